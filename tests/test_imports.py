"""Importing generations that already exist: AlpacaEval, NoveltyBench, mapped JSONL, and bad files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hivemind import HivemindError
from hivemind.analyze.stage import analyze_run
from hivemind.core.config_files import resolve_run
from hivemind.embed.stage import embed_run
from hivemind.runs.imports import FieldMapping, import_files
from hivemind.store import Store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ALPACA = SHARED / "alpaca_eval_outputs"
needs_alpaca = pytest.mark.skipif(not ALPACA.is_dir(), reason=f"{ALPACA} not present (CI clones beside shared/)")


def trimmed_alpaca(folder: Path, n_prompts: int) -> list[Path]:
    """The first n instructions of every model's file, as real AlpacaEval-format files."""
    paths = []
    for source in sorted(ALPACA.glob("*.json")):
        records = json.loads(source.read_text())[:n_prompts]
        target = folder / source.name
        target.write_text(json.dumps(records))
        paths.append(target)
    return paths


@needs_alpaca
def test_alpaca_import_matches_prompts_by_text(tmp_path):
    files = trimmed_alpaca(tmp_path, 40)
    config = import_files(files, "alpaca", results_dir=tmp_path / "results")
    assert len(config.systems) == 16
    assert {s.name for s in config.systems} >= {"Meta-Llama-3-8B-Instruct", "Llama-3-Instruct-8B-SimPO"}
    with Store(config.store_path, create=False) as store:
        assert len(store.prompts()) == 40          # 16 files, one shared prompt set
        assert store.count_responses() == 16 * 40
    # the run can be named by its name alone from now on
    again = resolve_run("alpaca", results_dir=tmp_path / "results")
    assert [s.identity for s in again.systems] == [s.identity for s in config.systems]


@needs_alpaca
def test_alpaca_families_are_nearest_neighbours(tmp_path):
    """The acceptance check: a 16 x 16 matrix in which Llama-3-8B-Instruct and its SimPO fine-tune are
    each other's nearest or second-nearest system."""
    config = import_files(trimmed_alpaca(tmp_path, 150), "alpaca", results_dir=tmp_path / "results")
    embed_run(config, progress=False)
    analyze_run(config, progress=False)
    matrix = pd.read_csv(config.run_dir / "inter_model_similarity.csv", index_col=0)
    assert matrix.shape == (16, 16)

    def nearest(name: str) -> list[str]:
        return matrix.loc[name].drop(name).sort_values(ascending=False).index[:2].tolist()
    assert "Llama-3-Instruct-8B-SimPO" in nearest("Meta-Llama-3-8B-Instruct")
    assert "Meta-Llama-3-8B-Instruct" in nearest("Llama-3-Instruct-8B-SimPO")


def test_noveltybench_and_mapped_jsonl(tmp_path):
    nb = tmp_path / "generations.jsonl"
    nb.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "prompt": "Name a color.", "model": "m1", "generations": ["Blue.", "Red.", "Green."]},
        {"id": "b", "prompt": "Name a fruit.", "model": "m1", "generations": ["Apple.", "Pear."]},
        {"id": "a", "prompt": "Name a color.", "model": "m2", "generations": ["Blue!", "Teal."]},
    ]) + "\n")
    config = import_files([nb], "nb", results_dir=tmp_path / "results")
    assert [s.name for s in config.systems] == ["m1", "m2"]
    assert config.samples == 3
    with Store(config.store_path, create=False) as store:
        frame = store.responses_frame()
    assert sorted(frame[frame.system == "m1"].text) == ["Apple.", "Blue.", "Green.", "Pear.", "Red."]
    assert frame.prompt_id.nunique() == 2

    mapped = tmp_path / "mine.jsonl"
    mapped.write_text(json.dumps({"q": "Name a color.", "who": "m3", "answers": ["Blue", "Blue"]}) + "\n")
    config = import_files([mapped], "mapped", results_dir=tmp_path / "results",
                          mapping=FieldMapping(prompt="q", response="answers", model="who"))
    with Store(config.store_path, create=False) as store:
        assert store.count_responses() == 2
        # the same prompt text gets the same id as in the NoveltyBench import
        assert store.prompts()[0].id in set(frame.prompt_id)


def test_import_json_names_each_source_by_file_and_digest_never_its_folder(tmp_path):
    """import.json travels into a published snapshot: it records the file's name and sha256, not where it lay."""
    import hashlib

    folder = tmp_path / "somewhere" / "private"
    folder.mkdir(parents=True)
    path = folder / "generations.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "Name a color.", "model": "m1", "generations": ["Blue."]}) + "\n")
    config = import_files([path], "nb", results_dir=tmp_path / "results")
    text = (config.run_dir / "import.json").read_text()
    assert str(folder) not in text and "somewhere" not in text
    assert json.loads(text)["source"] == [{"file": "generations.jsonl",
                                           "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}]


def test_bad_files_write_nothing(tmp_path):
    results = tmp_path / "results"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok", "model": "m", "response": "fine"}\n{"prompt": "broken"\n')
    with pytest.raises(HivemindError, match=r"bad.jsonl:2: malformed JSON"):
        import_files([bad], "bad", results_dir=results)
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"prompt": "p", "model": "m"}) + "\n")
    with pytest.raises(HivemindError, match=r"missing.jsonl:1: missing field\(s\) response"):
        import_files([missing], "bad", results_dir=results)
    assert not results.exists()  # nothing written, not even the results folder

    # CLI: message, non-zero exit, no traceback
    proc = subprocess.run([sys.executable, "-m", "hivemind.cli", "import", str(bad), "--name", "bad",
                           "--results", str(results)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "bad.jsonl:2" in proc.stderr and "Traceback" not in proc.stderr


def test_a_bad_run_name_is_an_error_not_a_traceback(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"prompt": "p", "model": "m", "response": "r"}) + "\n")
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "hivemind.cli", "import", str(good), "--name", "has space",
                           "--results", str(results)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "run name 'has space'" in proc.stderr and "Traceback" not in proc.stderr
    assert not results.exists()


def test_a_json_file_that_is_not_utf8_is_an_error(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_bytes(b'[{"instruction": "caf\xe9", "output": "o", "generator": "m"}]')
    with pytest.raises(HivemindError, match=r"outputs.json: not UTF-8 text"):
        import_files([path], "latin", results_dir=tmp_path / "results")


def test_existing_run_is_never_overwritten(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"prompt": "p", "model": "m", "response": "r"}) + "\n")
    config = import_files([good], "run1", results_dir=tmp_path / "results")
    before = config.store_path.read_bytes()
    with pytest.raises(HivemindError, match="already exists"):
        import_files([good], "run1", results_dir=tmp_path / "results")
    assert config.store_path.read_bytes() == before


# --- imports that neither double nor refuse real data ------------------------------------------------

NOVELTYBENCH = SHARED / "noveltybench_dev"
needs_noveltybench = pytest.mark.skipif(not NOVELTYBENCH.is_dir(), reason=f"{NOVELTYBENCH} not present")
NB_MODELS = ["openai__gpt-4o-mini-2024-07-18", "google__gemma-2-9b-it", "meta-llama__Llama-3.1-8B-Instruct"]


def noveltybench(folder: Path, model: str, n_prompts: int, samples=None) -> Path:
    """The first n prompts of one model's real NoveltyBench generations; `samples`: how many generations to
    keep, one number or one per prompt (NoveltyBench has 10)."""
    lines = (NOVELTYBENCH / f"{model}.jsonl").read_text().splitlines()[:n_prompts]
    records = [json.loads(line) for line in lines]
    for i, record in enumerate(records):
        keep = samples[i] if isinstance(samples, (list, tuple)) else samples
        if keep is not None:
            record["generations"] = record["generations"][:keep]
            record["generation_scores"] = record["generation_scores"][:keep]
            record["partition"] = record["partition"][:keep]
    path = folder / f"{model}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def stored_count(config) -> int:
    with Store(config.store_path, create=False) as store:
        return store.count_responses()


@needs_noveltybench
def test_a_file_given_twice_is_not_doubled_and_the_cli_counts_the_skipped_rows(tmp_path):
    path = noveltybench(tmp_path, NB_MODELS[0], 3, samples=2)
    results = tmp_path / "results"
    proc = cli("import", path, path, "--name", "twice", "--results", results)
    assert proc.returncode == 0, proc.stderr
    assert "3 duplicate rows skipped" in proc.stdout and f"{path.name}: 3" in proc.stdout
    assert "given twice" in proc.stdout
    config = resolve_run("twice", results_dir=results)
    assert stored_count(config) == 3 * 2 and config.samples == 2
    notes = json.loads((config.run_dir / "import.json").read_text())
    assert notes["duplicate_rows"] == 3 and notes["rows"] == 3


@needs_alpaca
def test_the_same_rows_in_two_files_are_counted_once(tmp_path):
    source = sorted(ALPACA.glob("*.json"))[0]
    records = json.loads(source.read_text())[:5]
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(records[:3]))
    second.write_text(json.dumps(records[1:]))          # rows 2 and 3 again, then two new ones
    config = import_files([first, second], "overlap", results_dir=tmp_path / "results")
    assert stored_count(config) == 5
    assert json.loads((config.run_dir / "import.json").read_text())["duplicates_by_file"] == {str(second): 2}


def test_one_prompt_text_under_two_noveltybench_ids_is_refused(tmp_path):
    path = tmp_path / "generations.jsonl"
    path.write_text(json.dumps({"id": "curated-1", "prompt": "Name a colour.", "model": "m", "generations": ["Red"]})
                    + "\n" + json.dumps({"id": "curated-7", "prompt": "Name a colour. ", "model": "m2",
                                         "generations": ["Blue"]}) + "\n")
    with pytest.raises(HivemindError, match=r"generations.jsonl:2: prompt id 'curated-7' has the same text as prompt "
                                            r"id 'curated-1' \(.*generations.jsonl:1\)"):
        import_files([path], "twoids", results_dir=tmp_path / "results")
    assert not (tmp_path / "results" / "twoids").exists()


def test_identical_lines_are_counted_and_a_sample_field_keeps_identical_answers_apart(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"prompt": "Name a colour.", "model": "m", "response": "Blue"}] * 2
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = import_files([path], "dups", results_dir=tmp_path / "results")
    assert stored_count(config) == 1
    assert json.loads((config.run_dir / "import.json").read_text())["duplicate_rows"] == 1
    path.write_text("".join(json.dumps({**r, "sample": i}) + "\n" for i, r in enumerate(rows)))
    config = import_files([path], "samples", results_dir=tmp_path / "results")
    assert stored_count(config) == 2


@needs_noveltybench
def test_parquet_import_works_like_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = noveltybench(tmp_path, NB_MODELS[1], 4, samples=3)
    parquet = tmp_path / "generations.parquet"
    pq.write_table(pa.Table.from_pylist([json.loads(line) for line in jsonl.read_text().splitlines()]), parquet)
    results = tmp_path / "results"
    proc = cli("import", parquet, "--name", "from-parquet", "--results", results)
    assert proc.returncode == 0, proc.stderr
    from_parquet = resolve_run("from-parquet", results_dir=results)
    from_jsonl = import_files([jsonl], "from-jsonl", results_dir=results)
    with Store(from_parquet.store_path, create=False) as a, Store(from_jsonl.store_path, create=False) as b:
        assert a.responses_frame()[["prompt_id", "sample", "text"]].equals(
            b.responses_frame()[["prompt_id", "sample", "text"]])
        assert len(a.prompts()) == 4


def test_a_real_system_cannot_take_a_control_name(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"prompt": "p", "model": "control:babble", "response": "r"}) + "\n")
    results = tmp_path / "results"
    proc = cli("import", path, "--name", "ctl", "--results", results)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "rows.jsonl:1: field 'model' is not a usable system name" in proc.stderr
    assert "reserved for control systems" in proc.stderr
    assert not results.exists()
    from hivemind.core.config_files import load_config

    config = tmp_path / "run.yaml"
    config.write_text("name: r\nprompts: p.jsonl\nsystems:\n  - {name: 'Control:Salad', model: openai/m}\n")
    with pytest.raises(HivemindError, match=r"systems\.0\.name: .*reserved for control systems"):
        load_config(config)


def test_scores_by_prompt_text_shared_by_two_ids_are_refused_not_given_to_the_last(tmp_path):
    from synthetic_run import Answer, make_run

    from hivemind.runs.imports import import_scores
    from hivemind.store import Prompt

    prompts = [Prompt("p1", "Name a colour."), Prompt("p2", "Name a colour.")]
    answers = [Answer("s", pid, i, f"{pid} answer {i}", [1.0, i, 0.5]) for pid in ("p1", "p2") for i in range(2)]
    config = make_run(tmp_path, ["s"], prompts, answers)
    path = tmp_path / "scores.jsonl"
    path.write_text(json.dumps({"prompt": "Name a colour.", "system": "s", "sample": 0, "score": 3}) + "\n")
    with pytest.raises(HivemindError, match=r"scores.jsonl:1: the prompt text 'Name a colour.' is stored under 2 "
                                            r"ids \(p1, p2\).*prompt_id"):
        import_scores(path, config, "ext")
    path.write_text(json.dumps({"prompt_id": "p1", "prompt": "Name a colour.", "system": "s", "sample": 0,
                                "score": 3}) + "\n")
    assert import_scores(path, config, "ext").stored == 1
    with Store(config.store_path, create=False) as store:
        assert store.scores_frame()[["prompt_id", "score"]].values.tolist() == [["p1", 3.0]]


def unverified_snapshot(folder: Path, rows: list[tuple[str, str, str, int, str]]) -> Path:
    """A snapshot folder without a manifest (imported only with --no-verify): config.yaml and
    responses.parquet of rows (system name, prompt id, prompt text, sample, answer)."""
    from hivemind.core.config import RunConfig, System
    from hivemind.results.record import save_run_config

    systems = {name: System(name=name, model=f"test/{name}") for name in dict.fromkeys(r[0] for r in rows)}
    folder.mkdir()
    config = RunConfig(name="snap", prompts="prompts.jsonl", samples=2, results_dir=str(folder.parent),
                       systems=list(systems.values()))
    save_run_config(config, folder)
    pd.DataFrame([{"system_id": systems[s].identity, "prompt_id": pid, "prompt": text, "category": None,
                   "sample": sample, "seed": None, "text": answer, "finish_reason": "stop", "prompt_tokens": None,
                   "completion_tokens": None, "latency_s": None, "cost": None, "error": None}
                  for s, pid, text, sample, answer in rows]).to_parquet(folder / "responses.parquet")
    return folder


def test_repeated_snapshot_rows_are_counted_and_conflicting_ones_refused(tmp_path):
    rows = [("m", "p1", "Name a colour.", 0, "Blue"), ("m", "p1", "Name a colour.", 1, "Red"),
            ("m", "p2", "Name a colour.", 0, "Green"), ("m", "p2", "Name a colour.", 1, "Teal")]
    folder = unverified_snapshot(tmp_path / "snap", rows + rows[:2])
    results = tmp_path / "results"
    proc = cli("import", folder, "--name", "again", "--no-verify", "--results", results)
    assert proc.returncode == 0, proc.stderr
    assert "2 duplicate rows skipped (repeated answers in the snapshot)" in proc.stdout
    assert "prompts p1, p2 have the same text; kept apart, as in the snapshot" in proc.stdout
    config = resolve_run("again", results_dir=results)
    assert stored_count(config) == 4
    assert json.loads((config.run_dir / "import.json").read_text())["duplicate_rows"] == 2

    conflicting = unverified_snapshot(tmp_path / "bad", rows + [("m", "p1", "Name a colour.", 1, "Purple")])
    with pytest.raises(HivemindError, match=r"two different answers for system .*, prompt p1, sample 1 \(row 5\)"):
        import_files([conflicting], "bad", results_dir=results, verify=False)
    assert not (results / "bad").exists()


@needs_noveltybench
def test_unequal_samples_per_system_analyse_and_say_where_intra_is_undefined(tmp_path):
    """Real NoveltyBench answers: one model with 3 samples per prompt, one with 1, one with 3, 1 and 2."""
    files = [noveltybench(tmp_path, NB_MODELS[0], 3, samples=3), noveltybench(tmp_path, NB_MODELS[1], 3, samples=1),
             noveltybench(tmp_path, NB_MODELS[2], 3, samples=[3, 1, 2])]
    results = tmp_path / "results"
    proc = cli("import", *files, "--name", "unequal", "--results", results)
    assert proc.returncode == 0, proc.stderr
    assert "samples per prompt differ between systems" in proc.stdout
    config = resolve_run("unequal", results_dir=results)
    assert config.samples == 3
    embed_run(config, progress=False)
    proc = cli("analyze", results / "unequal", "-q")
    assert proc.returncode == 0, proc.stderr
    info = json.loads((config.run_dir / "analysis.json").read_text())
    one, varying = "google/gemma-2-9b-it", "meta-llama/Llama-3.1-8B-Instruct"
    assert any(one in w and "fewer than 2 samples on every prompt" in w for w in info["warnings"])
    assert any(f"{varying} (1 of 3)" in w for w in info["warnings"])
    buckets = pd.read_csv(config.run_dir / "intra_model_buckets.csv", index_col="system")
    assert pd.isna(buckets.loc[one, "mean"]) and buckets.loc[one, "n_prompts"] == 0
    assert buckets.loc[varying, "n_prompts"] == 2 and buckets["mean"].notna().sum() == 2
    inter = pd.read_csv(config.run_dir / "inter_model_similarity.csv", index_col="system")
    assert inter.notna().all().all()
    assert "collect" not in proc.stdout + proc.stderr
    listed = cli("list", "--results", results)   # fewer answers than systems x prompts x samples: not "collect"
    assert listed.returncode == 0 and "unequal" in listed.stdout, listed.stderr
    assert "hivemind collect" not in listed.stdout, listed.stdout


def test_an_imported_run_is_never_told_to_collect(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "model": m, "response": [f"{m} {p} {i}" for i in range(2)]})
                            + "\n" for p in ("Name a colour.", "Name a fruit.") for m in ("m1", "m2")))
    config = import_files([path], "imp", results_dir=tmp_path / "results")
    with Store(config.store_path, create=False) as store:   # as if one system's answers never came
        store.db.execute("DELETE FROM responses WHERE system_id = ?", (config.systems[1].identity,))
        store.db.commit()
    proc = cli("analyze", tmp_path / "results" / "imp", "-q")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no stored responses for system(s) m2" in proc.stderr
    assert "hivemind import" in proc.stderr and "collect" not in proc.stderr


@needs_noveltybench
def test_score_on_a_run_with_only_imported_scorers_says_what_was_imported(tmp_path):
    path = noveltybench(tmp_path, NB_MODELS[0], 2, samples=3)
    results = tmp_path / "results"
    assert cli("import", path, "--name", "nb", "--results", results).returncode == 0
    proc = cli("import", "--scores", path, "--name", "nb", "--scorer", "reward", "--results", results)
    assert proc.returncode == 0, proc.stderr
    proc = cli("score", results / "nb", "-q")
    assert proc.returncode == 0, proc.stderr
    # The default offline gate (fluency) was scored by the import: nothing is left to compute.
    assert "fluency (fluency): 0 scored" in proc.stdout and "6 already scored" in proc.stdout


@needs_alpaca
def test_one_answer_per_model_analyses_and_the_advice_is_to_import_not_collect(tmp_path):
    """AlpacaEval exports have one answer per model and instruction: inter-model tables, no intra, and the
    warning says what applies to an imported run."""
    files = [path for path in trimmed_alpaca(tmp_path, 3) if path.stem in ("gpt-4o-2024-05-13", "gemma-7b-it")]
    config = import_files(files, "alpaca1", results_dir=tmp_path / "results")
    assert config.samples == 1
    embed_run(config, progress=False)
    summary = analyze_run(config, progress=False)
    assert any("import >= 2 samples per prompt" in w for w in summary.warnings), summary.warnings
    assert not any("collect" in w for w in summary.warnings), summary.warnings
    assert pd.read_csv(config.run_dir / "inter_model_similarity.csv", index_col=0).notna().all().all()
