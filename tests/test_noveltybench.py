"""NoveltyBench interoperability on its own published generations: the utility identity, its partitions
imported as pair verdicts, and the run exported in its evaluation layout."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hivemind import HivemindError
from hivemind.analyze.diversity import utility
from hivemind.analyze.stage import analyze_run
from hivemind.analyze.equivalence_choice import stored_verdicts
from hivemind.core.config_files import resolve_run
from hivemind.embed.stage import embed_run
from hivemind.runs.imports import import_files, import_scores
from hivemind.runs.noveltybench import METHOD, canonical, cell_verdicts, export_noveltybench, import_partitions
from hivemind.store import Store

NOVELTYBENCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "noveltybench_dev"
pytestmark = pytest.mark.skipif(not NOVELTYBENCH.is_dir(), reason=f"{NOVELTYBENCH} not present")
MODELS = ["openai__gpt-4o-mini-2024-07-18", "google__gemma-2-9b-it", "gemini__gemini-2.0-flash"]


def lines(model: str) -> list[dict]:
    return [json.loads(line) for line in (NOVELTYBENCH / f"{model}.jsonl").read_text().splitlines()]


def all_lines() -> list[dict]:
    return [record for path in sorted(NOVELTYBENCH.glob("*.jsonl")) for record in lines(path.stem)]


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def nb_compared_pairs(labels: list[int]) -> list[tuple[int, int]]:
    """NoveltyBench's src/partition.py loop, verbatim in shape, recording the pairs it asks about."""
    pairs, partition, classes = [], [-1] * len(labels), 0
    for i in range(len(labels)):
        if partition[i] >= 0:
            continue
        partition[i] = classes
        for j in range(i + 1, len(labels)):
            if partition[j] == -1:
                pairs.append((i, j))
                if labels[i] == labels[j]:
                    partition[j] = classes
        classes += 1
    return pairs


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def run(tmp_path):
    """3 NoveltyBench models x 6 prompts imported: generations, then scores and partitions from the same lines."""
    files = [write(tmp_path / f"{m}.jsonl", lines(m)[:6]) for m in MODELS]
    config = import_files(files, "nb", results_dir=tmp_path / "results")
    for path in files:
        import_scores(path, config, "reward")
        import_partitions(path, config)
    return resolve_run("nb", results_dir=tmp_path / "results"), files


# The utility identity ----------------------------------------------------------------------------------

def test_utility_from_noveltybench_partition_and_scores_equals_its_utility_on_all_24_models():
    records = all_lines()
    assert len(records) == 24 * 50
    for r in records:
        labels = np.array(r["partition"])
        opens = [r["partition"][i] not in r["partition"][:i] for i in range(len(labels))]
        # the data's convention: a repeat of an earlier class scores 0, a class's opener 1-10
        assert all((s == 0) != o for s, o in zip(r["generation_scores"], opens)), r["id"]
        assert r["partition"] == canonical(r["partition"])
        assert utility(labels, np.array(r["generation_scores"], float), 0.8) == pytest.approx(r["utility"],
                                                                                             abs=1e-12, rel=0)


# Import --partitions -------------------------------------------------------------------------------------

def test_verdicts_are_exactly_the_pairs_noveltybench_compares_and_rebuild_its_partition_on_all_cells():
    for r in all_lines():
        texts = {("s", "p", i): text for i, text in enumerate(r["generations"])}
        verdicts = cell_verdicts("s", "p", r["partition"], texts)
        assert [(v.sample_a, v.sample_b) for v in verdicts] == nb_compared_pairs(r["partition"])
        assert all(v.same == (r["partition"][v.sample_a] == r["partition"][v.sample_b]) for v in verdicts)


def test_a_blank_answer_is_left_out_of_the_compared_pairs():
    labels, texts = [0, 1, 0, 2], {("s", "p", 0): "a", ("s", "p", 1): "  ", ("s", "p", 2): "a", ("s", "p", 3): "b"}
    pairs = [(v.sample_a, v.sample_b, v.same) for v in cell_verdicts("s", "p", labels, texts)]
    assert pairs == [(0, 2, True), (0, 3, False)]


def test_analysis_partitions_with_the_stored_verdicts_reproduce_noveltybench(run):
    config, _ = run
    assert config.equivalence.method == "imported" and config.equivalence.verdict_method == METHOD
    ids = {s.name: s.identity for s in config.systems}
    with Store(config.store_path, create=False) as store:
        equivalence = stored_verdicts(store, METHOD, list(ids.values()), config.name)
        by_text = {p.text.strip(): p.id for p in store.prompts()}
    checked = 0
    for model in MODELS:
        for r in lines(model)[:6]:
            keys = [(ids[r["model"]], by_text[r["prompt"].strip()], i) for i in range(len(r["generations"]))]
            labels = equivalence.partition(np.zeros((len(keys), 1)), r["generations"], keys, r["prompt"])
            assert labels.tolist() == r["partition"]
            checked += 1
    assert checked == 18


def test_importing_the_same_partitions_again_changes_nothing_and_keeps_the_verdicts(run):
    config, files = run
    with Store(config.store_path, create=False) as store:
        before = store.verdicts(METHOD)
    result = import_partitions(files[0], config)
    assert result.previous == "imported" and result.cells == 6 and result.unpartitioned == 0
    with Store(config.store_path, create=False) as store:
        assert store.verdicts(METHOD) == before
    assert sum(len(pairs) for pairs in before.values()) == sum(
        len(nb_compared_pairs(r["partition"])) for m in MODELS for r in lines(m)[:6])


def test_a_generation_that_differs_from_the_stored_answer_is_refused_naming_the_line(run, tmp_path):
    config, _ = run
    records = lines(MODELS[1])[:6]
    records[3]["generations"][4] += " (edited)"
    records[3]["partition"] = [0] * 10
    path = write(tmp_path / "edited.jsonl", records)
    with Store(config.store_path, create=False) as store:
        before = store.verdicts(METHOD)
    with pytest.raises(HivemindError, match=r"edited.jsonl:4: generation 4 differs from the stored answer"):
        import_partitions(path, config)
    with Store(config.store_path, create=False) as store:
        assert store.verdicts(METHOD) == before        # nothing stored


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(partition=r["partition"][:9]), r"bad.jsonl:2: partition must be a list of class numbers"),
    (lambda r: r.update(partition=[0.5] * 10), r"bad.jsonl:2: partition must be a list"),
    (lambda r: r.update(generations=r["generations"][:9], partition=r["partition"][:9]),
     r"bad.jsonl:2: 9 generations, but run has answers \[0, .*9\]"),
    (lambda r: r.update(model="no-such-model"), r"1 line\(s\) are for answers not in run 'nb', e.g. .*bad.jsonl:2"),
])
def test_bad_partition_lines_are_refused_with_their_line(run, tmp_path, change, message):
    config, _ = run
    records = lines(MODELS[0])[:2]
    change(records[1])
    with pytest.raises(HivemindError, match=message):
        import_partitions(write(tmp_path / "bad.jsonl", records), config)


def test_the_cli_imports_partitions_and_says_the_equivalence_changed(tmp_path):
    path = write(tmp_path / "gen.jsonl", lines(MODELS[0])[:3])
    results = tmp_path / "results"
    assert cli("import", path, "--name", "nb", "--results", results).returncode == 0
    proc = cli("import", "--partitions", path, "--name", "nb", "--results", results)
    assert proc.returncode == 0, proc.stderr
    assert "partition of 3 of 3 answer sets" in proc.stdout
    assert "equivalence set to imported in its config.yaml (was learned)" in proc.stdout
    assert "method: imported" in (results / "nb" / "config.yaml").read_text()
    proc = cli("import", "--partitions", tmp_path / "missing.jsonl", "--name", "nb", "--results", results)
    assert proc.returncode != 0 and "missing.jsonl: file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


# Export noveltybench ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """The 3 x 6 import embedded and analysed with `equivalence: imported`: partitions.csv from analysis."""
    folder = tmp_path_factory.mktemp("analysed")
    files = [write(folder / f"{m}.jsonl", lines(m)[:6]) for m in MODELS]
    config = import_files(files, "nb", results_dir=folder / "results")
    for path in files:
        import_scores(path, config, "reward")
        import_partitions(path, config)
    config = resolve_run("nb", results_dir=folder / "results")
    embed_run(config, progress=False)
    analyze_run(config, progress=False)
    return config, files


@pytest.fixture
def analysed_copy(analysed, tmp_path):
    """A copy of the analysed run, for tests that change its store."""
    config, files = analysed
    shutil.copytree(config.run_dir, tmp_path / "results" / "nb", ignore=shutil.ignore_patterns(".lock"))
    return resolve_run("nb", results_dir=tmp_path / "results"), files


def test_round_trip_export_equals_noveltybench_own_files(analysed, tmp_path):
    """Import generations, scores and partitions, embed, analyse, export: NoveltyBench's own files come back."""
    config, _ = analysed
    assert json.loads((config.run_dir / "analysis.json").read_text())["equivalence"]["method"] == "imported"
    import pandas as pd

    per_prompt = pd.read_csv(config.run_dir / "diversity_per_prompt.csv", dtype={"prompt_id": str})
    with Store(config.store_path, create=False) as store:
        text_of = {p.id: p.text.strip() for p in store.prompts()}
    classes = {(r["model"], r["prompt"].strip()): len(set(r["partition"])) for m in MODELS for r in lines(m)[:6]}
    analysed_classes = {(r.system, text_of[r.prompt_id]): r.distinct_ideas for r in per_prompt.itertuples()
                        if r.kind == "system"}
    assert analysed_classes == classes                  # analysis's distinct ideas are NoveltyBench's classes
    result = export_noveltybench(config, out=tmp_path / "nb")
    assert result.scorer == "reward" and len(result.models) == 3
    for model in MODELS:
        source = {r["prompt"]: r for r in lines(model)[:6]}
        folder = tmp_path / "nb" / source[next(iter(source))]["model"].replace("/", "_")
        scores = [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]
        partitions = [json.loads(line) for line in (folder / "partitions.jsonl").read_text().splitlines()]
        generations = [json.loads(line) for line in (folder / "generations.jsonl").read_text().splitlines()]
        assert len(scores) == len(partitions) == len(generations) == 6
        assert set(generations[0]) == {"id", "prompt", "model", "generations"}
        assert set(partitions[0]) == {"id", "prompt", "model", "generations", "partition", "distinct"}
        for out in scores:
            src = source[out["prompt"]]
            assert out["model"] == src["model"] and out["generations"] == src["generations"]
            assert out["partition"] == src["partition"] and out["distinct"] == max(src["partition"])
            assert out["generation_scores"] == src["generation_scores"]
            assert out["partition_scores"] == [s for s in src["generation_scores"] if s]
            assert out["utility"] == pytest.approx(src["utility"], abs=1e-12, rel=0)
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["mean_distinct"] == pytest.approx(np.mean([max(r["partition"]) + 1 for r in source.values()]))
        assert summary["mean_utility"] == pytest.approx(np.mean([r["utility"] for r in source.values()]), abs=1e-12)


def test_export_before_analysis_says_to_analyse(run, tmp_path):
    config, _ = run
    with pytest.raises(HivemindError, match=r"partitions.csv: missing; run `hivemind analyze nb` first"):
        export_noveltybench(config, out=tmp_path / "out")


def test_export_refusals_say_what_to_do(analysed_copy, tmp_path):
    config, files = analysed_copy
    import_scores(files[0], config, "other")
    config = resolve_run("nb", results_dir=config.results_dir)
    with pytest.raises(HivemindError, match=r"has scorers reward, other: name the 1-10 one .* --scorer"):
        export_noveltybench(config, out=tmp_path / "out")
    with pytest.raises(HivemindError, match=r"scorer 'other' has no score for system"):
        export_noveltybench(config, out=tmp_path / "out", scorer="other")
    with Store(config.store_path, create=False) as store:
        store.db.execute("UPDATE scores SET score = score * 10 WHERE scorer = 'reward'")
        store.db.commit()
    with pytest.raises(HivemindError, match=r"outside NoveltyBench's 1-10 scale"):
        export_noveltybench(config, out=tmp_path / "out", scorer="reward")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.jsonl"))
    result = export_noveltybench(config, out=tmp_path / "out", scorer="none")
    folder = tmp_path / "out" / "gpt-4o-mini-2024-07-18"
    assert result.scorer is None and not (folder / "scores.jsonl").exists()
    assert set(json.loads((folder / "summary.json").read_text())) == {"mean_distinct"}


def test_a_key_in_an_answer_refuses_the_export(analysed_copy, tmp_path):
    config, _ = analysed_copy
    with Store(config.store_path, create=False) as store:
        store.db.execute("UPDATE responses SET text = text || ' my key is sk-proj-Q7fK2mX9pL4tR8vB1nZ6wY3c' "
                         "WHERE sample = 0")
        store.db.commit()
    with pytest.raises(HivemindError, match="secret|key"):
        export_noveltybench(config, out=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.jsonl"))


def test_the_cli_exports_noveltybench(analysed_copy):
    config, _ = analysed_copy
    proc = cli("export", "noveltybench", config.run_dir)
    assert proc.returncode == 0, proc.stderr
    assert "for 3 models" in proc.stdout and "scorer 'reward'" in proc.stdout
    assert (config.run_dir / "noveltybench" / "gemini-2.0-flash" / "summary.json").is_file()


def test_scores_without_partition_scores_give_a_repeat_its_class_openers_score(run):
    """The published lines carry partition and generation_scores only: a repeat's 0 is no quality, so the
    stored score of a repeat is that of its class's first generation."""
    config, _ = run
    ids = {s.name: s.identity for s in config.systems}
    with Store(config.store_path, create=False) as store:
        frame = store.scores_frame(list(ids.values()))
        by_text = {p.text.strip(): p.id for p in store.prompts()}
    stored = {(r.system_id, r.prompt_id, int(r.sample)): r.score for r in frame[frame.scorer == "reward"].itertuples()}
    repeats = 0
    for model in MODELS:
        for r in lines(model)[:6]:
            opener = {}
            for i, (label, score) in enumerate(zip(r["partition"], r["generation_scores"])):
                opener.setdefault(label, score)
                repeats += label in r["partition"][:i]
                assert stored[(ids[r["model"]], by_text[r["prompt"].strip()], i)] == opener[label] > 0
    assert repeats > 0
