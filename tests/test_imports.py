"""Importing generations that already exist: AlpacaEval, NoveltyBench, mapped JSONL, and bad files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hivemind import HivemindError
from hivemind.analyze import analyze_run
from hivemind.config import resolve_run
from hivemind.embed import embed_run
from hivemind.imports import FieldMapping, import_files
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
