"""A leaderboard that holds still: a system's own figures do not move when another system joins the run.

Real NoveltyBench answers of three models, imported and embedded with the bundled embedder (offline). The run is
analysed with two systems, then with the third added: the first two systems' own figures (intra-model similarity
and buckets, Vendi, distinct ideas, effective diversity, utility, pass rate) must be equal bit for bit, because the
floor, idea line and relevance line are pinned (results/.calibrations/), not measured from the systems present.
Recalibrating from another reference must move them, or the first check could not fail."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hivemind import pipeline
from hivemind.core.config import RunConfig
from hivemind.core.config_files import resolve_run
from hivemind.embed.stage import embed_run
from hivemind.results.calibration import calibrations_dir
from hivemind.results.record import save_run_config
from hivemind.runs.imports import import_files

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NOVELTYBENCH = SHARED / "noveltybench_dev"
MODELS = ["openai__gpt-4o-mini-2024-07-18", "google__gemma-2-9b-it", "meta-llama__Llama-3.1-8B-Instruct"]
N_PROMPTS, N_SAMPLES = 8, 5

pytestmark = pytest.mark.skipif(not NOVELTYBENCH.is_dir(), reason=f"{NOVELTYBENCH} not present")

OWN_LEADERBOARD = ["intra_mean", "share_above_0.8", "vendi", "distinct_ideas", "effective_diversity", "utility",
                   "pass_rate", *[f"{m}_ci_{side}" for m in ("vendi", "distinct_ideas", "effective_diversity",
                                                          "utility") for side in ("low", "high")]]
OWN_PER_PROMPT = ["vendi", "distinct_ideas", "effective_diversity", "utility", "pass_rate"]


def generations(folder: Path, model: str) -> Path:
    """The first prompts of one model's NoveltyBench generations, N_SAMPLES answers each."""
    records = [json.loads(line) for line in (NOVELTYBENCH / f"{model}.jsonl").read_text().splitlines()[:N_PROMPTS]]
    for record in records:
        for name in ("generations", "generation_scores", "partition"):
            record[name] = record[name][:N_SAMPLES]
    path = folder / f"{model}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """One run of three systems, embedded; `with_systems(n)` is its config with the first n systems."""
    folder = tmp_path_factory.mktemp("stability")
    config = import_files([generations(folder, m) for m in MODELS], "grow", results_dir=folder / "results")
    embed_run(config, progress=False)
    return config


def with_systems(config: RunConfig, n: int, **settings) -> RunConfig:
    fields = config.model_dump()
    fields.update(systems=fields["systems"][:n], **settings)
    edited = RunConfig.model_validate(fields)
    save_run_config(edited)          # the run folder's config, as an edited config.yaml would be
    return edited


def own_figures(config: RunConfig) -> dict[str, pd.DataFrame]:
    """Every own figure of every system, as analyze wrote them, indexed by system."""
    run = config.run_dir
    board = pd.read_csv(run / "leaderboard.csv").set_index("system")[OWN_LEADERBOARD]
    buckets = pd.read_csv(run / "intra_model_buckets.csv", index_col=0)
    per_prompt = pd.read_csv(run / "diversity_per_prompt.csv").set_index(["system", "prompt_id"])[OWN_PER_PROMPT]
    intra = pd.read_csv(run / "intra_model_per_prompt.csv").set_index(["system", "prompt_id"])
    return {"leaderboard": board, "buckets": buckets, "per_prompt": per_prompt, "intra": intra}


def rows_of(figures: dict[str, pd.DataFrame], systems: list[str]) -> dict[str, pd.DataFrame]:
    return {name: frame.loc[frame.index.get_level_values(0).isin(systems)].sort_index()
            for name, frame in figures.items()}


def assert_identical(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    """Equal bit for bit (NaN where NaN): pandas' equals, which compares exact values, never approximately."""
    for name in a:
        assert a[name].shape == b[name].shape and len(a[name]), name
        assert a[name].equals(b[name]), f"{name} differs:\n{a[name].compare(b[name])}"


def analysis_json(config: RunConfig) -> dict:
    return json.loads((config.run_dir / "analysis.json").read_text())


def test_adding_a_system_leaves_the_others_own_figures_unchanged(grown):
    inter = lambda config: pd.read_csv(config.run_dir / "leaderboard.csv").set_index("system")["inter_mean_others"]
    two = with_systems(grown, 2)
    pipeline.analyze(two, progress=False)
    before, info_before, inter_before = own_figures(two), analysis_json(two), inter(two)
    three = with_systems(grown, 3)
    pipeline.analyze(three, progress=False)
    after, info_after = own_figures(three), analysis_json(three)

    first_two = [s.name for s in two.systems]
    assert_identical(rows_of(before, first_two), rows_of(after, first_two))
    # the same pinned record both times, measured from the first analysis' systems ...
    assert info_before["calibration"] == info_after["calibration"]
    assert info_after["calibration"]["reference"] == first_two
    assert info_before["floor"] == info_after["floor"] == info_after["calibration"]["floor"]
    # ... while the systems present moved: their floor (what used to calibrate) and the relative figures
    assert info_before["floor_systems_present"] != info_after["floor_systems_present"]
    assert not inter_before.loc[first_two].equals(inter(three).loc[first_two])
    assert len(list(calibrations_dir(grown.results_dir).glob("*.json"))) == 1
    # results.json carries the record and names the relative figures
    results = json.loads((three.run_dir / "results.json").read_text())
    assert results["calibration"]["floor"] == info_after["floor"]
    assert {"inter_mean_others", "near_duplicate_rate", "effective_distinctness"} <= set(results["relative_metrics"])


def test_recalibrating_from_another_reference_moves_the_own_figures(grown):
    three = with_systems(grown, 3)
    pipeline.analyze(three, progress=False)      # the record pinned (by this or the test above)
    pinned = analysis_json(three)["calibration"]
    before = own_figures(three)
    third = three.systems[2].name
    declared = with_systems(grown, 3, calibration_reference=[third])
    pipeline.analyze(declared, progress=False)   # a declared reference alone does not replace a pinned record
    info = analysis_json(declared)
    assert info["calibration"] == pinned
    assert any("calibration_reference" in w and "--recalibrate" in w for w in info["warnings"])

    proc = subprocess.run([sys.executable, "-m", "hivemind.cli", "analyze", str(declared.run_dir), "--recalibrate",
                           "--quiet"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    info = analysis_json(resolve_run("grow", results_dir=declared.results_dir))
    assert info["calibration"]["reference"] == [third] and info["calibration"]["floor"] != pinned["floor"]
    after = own_figures(declared)
    # the floor moved, so the rescaled intra moved with it, and so did the idea line and the relevance line
    # (on 8 prompts the moved lines may or may not split another idea or gate another answer)
    assert not before["buckets"]["mean_rescaled"].equals(after["buckets"]["mean_rescaled"])
    assert info["calibration"]["idea_line"] != pinned["idea_line"]   # the embedding method's line moved;
    # the default method (learned) reads no line of the floor: its partitions are the set's own
    assert info["equivalence"]["method"] == "learned" and info["distinct_ideas_threshold"] is None
    assert info["quality_gate"]["relevance_line"] == info["calibration"]["relevance_line"] != pinned["relevance_line"]
    results = json.loads((declared.run_dir / "results.json").read_text())
    assert results["calibration"]["reference"] == [third]


def test_a_reference_that_is_not_a_system_is_one_clear_error(grown):
    with pytest.raises(ValueError, match="calibration_reference names 'nobody', not a system of this config"):
        with_systems(grown, 2, calibration_reference=["nobody"])


def test_a_snapshot_carries_its_calibration_and_importing_it_pins_it(grown, tmp_path):
    from hivemind.runs.snapshot import load_manifest, publish

    config = resolve_run("grow", results_dir=grown.results_dir)
    pipeline.analyze(config, progress=False)
    published = analysis_json(config)["calibration"]
    folder = publish(config, "grow-snapshot", results_dir=grown.results_dir)
    assert load_manifest(folder)["calibration"] == published

    imported = import_files([folder], "again", results_dir=tmp_path / "elsewhere")   # no record pinned there
    pipeline.analyze(imported, progress=False)
    pinned = analysis_json(imported)["calibration"]
    same = ["floor", "relevance_line", "idea_line", "reference", "embedder", "equivalence", "prompt_set", "file"]
    assert {k: pinned[k] for k in same} == {k: published[k] for k in same}
    assert any("snapshot grow-snapshot" in note for note in pinned["notes"])
    names = [s.name for s in config.systems]
    assert_identical(rows_of(own_figures(config), names), rows_of(own_figures(imported), names))


def test_the_leaderboard_groups_by_the_calibration_key_and_marks_relative_figures(grown):
    from hivemind.results import contract
    from hivemind.runs.leaderboard import calibration_lines, update_leaderboard

    csv_path, md_path = update_leaderboard(grown.results_dir, warn=lambda line: None)
    board, text = pd.read_csv(csv_path), md_path.read_text()
    assert (board["equivalence"] == "learned").all() and board["group"].str.contains("|learned|",
                                                                                    regex=False).all()
    assert board["calibration"].str.endswith(")").all() and "calibration: `" in text
    assert contract.RELATIVE_NOTE in text and f"inter (vs others) {contract.RELATIVE_MARK}" in text
    assert f"{contract.METRICS['vendi'].display} {contract.RELATIVE_MARK}" not in text
    # runs of one group measured against different records are named, never silently ranked together
    rows = pd.DataFrame({"run": ["a", "b"], "calibration": ["x.json (floor 0.1)", "y.json (floor 0.2)"]})
    assert "different calibrations" in calibration_lines(rows)[0] and "`a`: x.json" in calibration_lines(rows)[0]
