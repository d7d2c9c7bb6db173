"""Snapshots that cannot contradict themselves, and honest run states (hivemind.results.fingerprint).

One real run is built once (fake OpenAI server on loopback, real store, bundled embedder, real analysis and
report); every test works on its own copy of the run folder and drives the commands under test as real
`python -m hivemind.cli` subprocesses."""

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from hivemind import pipeline  # noqa: E402
from hivemind.core.config_files import load_config, resolve_run  # noqa: E402
from hivemind.results.fingerprint import read_analysis, report_record, run_fingerprint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY_VAR = "HIVEMIND_STALENESS_TEST_KEY"
SECRET = "sk-planted-staleness-7a6b5c4d3e2f1009"
RUN = "drift"
PROMPTS = ["Write a haiku about rain", "Name a boat", "Suggest a name for a night bakery"]
SYSTEM = """  - name: {name}
    model: openai/model-{name}
    api_base: {url}
    api_key_env: {key}
    params: {{temperature: 1.0, top_p: 0.9}}
"""


def hivemind(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(ROOT), **{KEY_VAR: SECRET})
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def write_config(folder: Path, url: str, samples: int = 2, systems=("alpha", "beta")) -> Path:
    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": t}) + "\n" for i, t in enumerate(PROMPTS)))
    path = folder / f"{RUN}.yaml"
    path.write_text(f"name: {RUN}\nprompts: {prompts}\nsamples: {samples}\nresults_dir: {folder / 'results'}\n"
                    "systems:\n" + "".join(SYSTEM.format(name=n, url=url, key=KEY_VAR) for n in systems))
    return path


@pytest.fixture(scope="module")
def server():
    """One fake server for the module: systems keep their identity (it hashes api_base) across tests."""
    with FakeOpenAI(expected_api_key=SECRET, enforce_api_key=True) as fake:
        yield fake


@pytest.fixture(scope="module")
def reported(tmp_path_factory, server):
    """A run collected, embedded, analysed and reported through the pipeline, built once."""
    folder = tmp_path_factory.mktemp("staleness")
    old = os.environ.get(KEY_VAR)
    os.environ[KEY_VAR] = SECRET
    try:
        config = load_config(write_config(folder, server.url))
        pipeline.collect(config, progress=False)
        pipeline.embed(config, progress=False)
        pipeline.analyze(config, progress=False)
        pipeline.report(config)
        yield config
    finally:
        if old is None:
            os.environ.pop(KEY_VAR, None)
        else:
            os.environ[KEY_VAR] = old


def copy_run(config, tmp_path: Path, name: str = RUN):
    """The analysed run copied under tmp_path/results; returns (its config, the results folder)."""
    results = tmp_path / "results"
    shutil.copytree(config.run_dir, results / name)
    return resolve_run(name, results_dir=results), results


def list_row(results: Path, cwd: Path, run: str = RUN) -> tuple[str, str]:
    done = hivemind("list", "--results", str(results), cwd=cwd)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith(run + " "))
    return row, done.stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_of(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def collect_more(config_path: Path, cwd: Path) -> None:
    """A real collect (subprocess) with one more sample per prompt: new answers enter the store."""
    done = hivemind("collect", str(config_path), "-q", cwd=cwd)
    assert done.returncode == 0, done.stderr


# snapshot publish ------------------------------------------------------------------------------------------

def test_publish_refused_after_a_collect_added_answers(reported, server, tmp_path):
    config, results = copy_run(reported, tmp_path)
    analysed_answers = json.loads((config.run_dir / "analysis.json").read_text())["n_responses"]
    collect_more(write_config(tmp_path, server.url, samples=3), tmp_path)

    done = hivemind("snapshot", "publish", RUN, "--name", "after-collect", "--results", str(results), cwd=tmp_path)
    assert done.returncode == 1
    message = done.stderr.strip()
    assert message.startswith("error: refusing to publish") and len(message.splitlines()) == 1, message
    assert f"hivemind analyze {RUN}" in message and f"hivemind report {RUN}" in message
    assert not (results / "snapshots" / "after-collect").exists()
    assert not (results / "snapshots").exists()     # refused before anything was written, no partial folder

    # After the commands it names, the snapshot is published and its answers are the analysed ones.
    for stage in ("embed", "analyze", "report"):    # the new answers need vectors first
        assert hivemind(stage, str(results / RUN), "-q", cwd=tmp_path).returncode == 0
    done = hivemind("snapshot", "publish", RUN, "--name", "after-collect", "--results", str(results), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = results / "snapshots" / "after-collect"
    analysis = json.loads((folder / "analysis.json").read_text())
    answers = pd.read_parquet(folder / "responses.parquet")
    assert analysis["n_responses"] == answers["text"].notna().sum() > analysed_answers
    assert json.loads((folder / "manifest.json").read_text())["fingerprint"] == analysis["fingerprint"]


def test_publish_refused_while_another_process_holds_the_run_lock(reported, tmp_path):
    config, results = copy_run(reported, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom hivemind.core.lock import RunLock\n"
         "lock = RunLock(sys.argv[1], 'collect')\nlock.__enter__()\nprint('held', flush=True)\ntime.sleep(600)\n",
         str(config.run_dir)], stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        done = hivemind("snapshot", "publish", RUN, "--name", "busy", "--results", str(results), cwd=tmp_path)
        assert done.returncode == 1
        assert f"run '{RUN}' is busy: pid {holder.pid}" in done.stderr and "stage collect" in done.stderr
        assert not (results / "snapshots" / "busy").exists()
    finally:
        os.kill(holder.pid, signal.SIGTERM)
        holder.wait(timeout=60)
    # the holder is gone (the kernel released its lock): the same command now publishes
    done = hivemind("snapshot", "publish", RUN, "--name", "busy", "--results", str(results), cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_published_snapshot_imported_and_reanalysed_equals_its_tables(reported, tmp_path):
    from hivemind.analyze import stage as analyze
    from hivemind.runs import snapshot
    from hivemind.runs.imports import import_files

    config, results = copy_run(reported, tmp_path)
    folder = snapshot.publish(config, "portable")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(folder, elsewhere)
    again = import_files([elsewhere], "reimported", results_dir=tmp_path / "again")
    analyze.analyze_run(again, progress=False)

    tables = sorted(p.name for p in folder.glob("*.csv") if p.name != "embedding_coverage.csv")
    assert len(tables) >= 10
    for name in tables:
        pd.testing.assert_frame_equal(pd.read_csv(again.run_dir / name), pd.read_csv(folder / name),
                                      check_exact=False, rtol=1e-9, atol=1e-12, obj=name)
    published, redone = (json.loads((f / "analysis.json").read_text()) for f in (folder, again.run_dir))
    assert redone["n_responses"] == published["n_responses"] == 12


# hivemind list ---------------------------------------------------------------------------------------------

def test_list_is_stale_in_both_directions_and_not_after_analyze_controls(reported, tmp_path):
    config, results = copy_run(reported, tmp_path)
    row, _ = list_row(results, tmp_path)
    assert row.split()[1] == "reported" and f"hivemind snapshot publish {RUN}" in row

    # The store changes after the analysis (one more sample, failed for good): stale, next is analyze.
    with sqlite3.connect(config.store_path) as db:
        system_id = db.execute("SELECT system_id FROM responses LIMIT 1").fetchone()[0]
        db.execute("INSERT INTO responses (system_id, prompt_id, sample, text, error, created_at) "
                   "VALUES (?, 'q0', 7, NULL, 'HTTP 500 after 8 attempts', '2026-01-01T00:00:00Z')", (system_id,))
    db.close()
    row, out = list_row(results, tmp_path)
    assert row.split()[1] == "stale" and f"hivemind analyze {RUN}" in row
    assert f"{RUN}: stale: store changed since analysis (run `hivemind analyze {RUN}`)" in out

    # Analysed again, report not redrawn: the other direction.
    assert hivemind("analyze", str(results / RUN), "-q", cwd=tmp_path).returncode == 0
    row, out = list_row(results, tmp_path)
    assert row.split()[1] == "stale" and f"hivemind report {RUN}" in row
    assert f"{RUN}: stale: analysis newer than the report (run `hivemind report {RUN}`)" in out
    assert "store changed" not in out

    # analyze --controls writes controls (and prompt vectors) into the store while it analyses: not stale.
    done = hivemind("analyze", str(results / RUN), "--controls", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "control" in pd.read_csv(config.run_dir / "leaderboard.csv")["kind"].tolist()
    _, out = list_row(results, tmp_path)
    assert "store changed" not in out and "analysis newer than the report" in out
    assert hivemind("report", str(results / RUN), "-q", cwd=tmp_path).returncode == 0
    row, out = list_row(results, tmp_path)
    assert row.split()[1] == "reported" and "stale:" not in out


def test_refused_analysis_is_not_analysed_and_not_ranked(reported, tmp_path, monkeypatch):
    """A refused analysis lands nothing (hivemind.results.folder scans before anything is renamed into place):
    a first analysis leaves the run unanalysed and unranked; a re-analysis leaves the previous files byte for
    byte, and `list` says they no longer describe the store."""
    config, results = copy_run(reported, tmp_path)
    shutil.copytree(config.run_dir, results / "good")       # a second, healthy run beside it
    text = (results / "good" / "config.yaml").read_text().replace(f"name: {RUN}", "name: good", 1)
    (results / "good" / "config.yaml").write_text(text)
    # A prompt carrying the key's value: the analysis writes prompt texts into its tables, so it is refused.
    with sqlite3.connect(config.store_path) as db:
        db.execute("UPDATE prompts SET text = text || ?  WHERE id = 'q1'", (f" (my key is {SECRET})",))
    db.close()

    # A re-analysis refused: the previous analysis stays exactly as it was, and is stale.
    before = {p.name: p.read_bytes() for p in config.run_dir.iterdir() if p.is_file() and p.suffix != ".sqlite"
              and not p.name.startswith(("store.sqlite", "."))}
    done = hivemind("analyze", str(results / RUN), "-q", cwd=tmp_path)
    assert done.returncode == 1 and "refusing to keep output that holds a secret" in done.stderr
    assert SECRET not in done.stderr
    after = {p.name: p.read_bytes() for p in config.run_dir.iterdir() if p.is_file() and p.suffix != ".sqlite"
             and not p.name.startswith(("store.sqlite", "."))}
    assert after == before
    row, out = list_row(results, tmp_path)
    assert row.split()[1] == "stale" and f"hivemind analyze {RUN}" in row
    assert "store changed since analysis" in out

    # A first analysis refused: nothing lands, the run is not analysed and not ranked.
    for path in config.run_dir.iterdir():
        if path.is_file() and not path.name.startswith(("store.sqlite", "config.yaml", ".")):
            path.unlink()
    done = hivemind("analyze", str(results / RUN), "-q", cwd=tmp_path)
    assert done.returncode == 1 and "refusing to keep output that holds a secret" in done.stderr
    assert not (config.run_dir / "analysis.json").exists() and not list(config.run_dir.glob("*.csv"))
    row, out = list_row(results, tmp_path)
    # next: analyze, or first score (the default fluency gate has answers to score: the planted key's)
    assert row.split()[1] in ("embedded", "scored") and (f"hivemind analyze {RUN}" in row or
                                                          f"hivemind score {RUN}" in row)

    done = hivemind("leaderboard", "update", "--results", str(results), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    board = pd.read_csv(results / "leaderboard.csv")
    assert set(board["run"]) == {"good"}
    assert f"skipped {config.run_dir}" in done.stderr
    for path in results.rglob("*"):
        if path.is_file() and path.suffix != ".sqlite" and not path.name.startswith("store.sqlite"):
            assert SECRET.encode() not in path.read_bytes(), path


# leaderboard add -------------------------------------------------------------------------------------------

def test_leaderboard_add_of_a_present_system_adds_nothing(reported, tmp_path):
    config, results = copy_run(reported, tmp_path)
    assert hivemind("leaderboard", "update", "--results", str(results), cwd=tmp_path).returncode == 0
    before = files_of(results)
    done = hivemind("leaderboard", "add", str(config.run_dir / "config.yaml"), "--system", "alpha",
                    "--results", str(results), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "already in run" in done.stdout and "nothing added" in done.stdout
    assert "added system" not in done.stdout
    assert re.search(r"alpha ranks [12]=? of 2 by effective diversity", done.stdout), done.stdout
    assert files_of(results) == before


def test_leaderboard_add_prints_the_rank_and_redraws_the_report(reported, server, tmp_path):
    config, results = copy_run(reported, tmp_path)
    path = write_config(tmp_path, server.url, systems=("alpha", "beta", "gamma"))
    server.reset_counts()
    done = hivemind("leaderboard", "add", str(path), "--system", "gamma", "--results", str(results), "-q",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert dict(server.by_model) == {"model-gamma": 6}            # only the new system was asked
    assert re.search(r"^gamma ranks [123]=? of 3 by effective diversity \(", done.stdout, re.M), done.stdout
    assert re.search(r"^closest systems .*: (alpha|beta) ", done.stdout, re.M), done.stdout
    grown = resolve_run(RUN, results_dir=results)
    analysis = read_analysis(grown.run_dir)
    assert analysis.complete and analysis.systems == ["alpha", "beta", "gamma"]
    assert analysis.fingerprint == run_fingerprint(grown)           # the analysis describes the store
    record = report_record(grown.run_dir)                           # and the report drew that analysis
    assert record["analysis_fingerprint"] == analysis.fingerprint
    assert record["analysis_sha256"] == sha256(grown.run_dir / "analysis.json")
    assert "gamma" in (grown.run_dir / "report.md").read_text()
    row, _ = list_row(results, tmp_path)
    assert row.split()[1] == "reported"


# The fingerprint itself (hand-made stores, no embedder) ----------------------------------------------------

def synthetic(root: Path, order=1, scorers=(), scores=()):
    import numpy as np
    from synthetic_run import Answer, make_run
    from hivemind.core.config import Scorer
    from hivemind.store import Prompt

    prompts = [Prompt("p0", "first question"), Prompt("p1", "second question")]
    answers = [Answer(s, p.id, k, f"{s} says {p.id} {k}", np.eye(4)[(i + k) % 4] + 0.1)
               for i, s in enumerate(["a", "b"]) for p in prompts for k in range(2)]
    return make_run(root, ["a", "b"], prompts, answers[::order],
                    scorers=[Scorer(name=n, kind="imported", pass_at=0.5) for n in scorers], scores=list(scores))


def test_fingerprint_covers_what_analysis_reads_and_nothing_else(tmp_path):
    from hivemind.store import Score, Store

    config = synthetic(tmp_path / "one", scorers=["judge"])
    first = run_fingerprint(config)
    assert first == run_fingerprint(synthetic(tmp_path / "reversed", order=-1, scorers=["judge"]))  # order-free
    assert first != run_fingerprint(synthetic(tmp_path / "plain"))          # a scorer is a setting that counts
    from hivemind.results.fingerprint import store_fingerprint

    moved = config.model_copy(update={"results_dir": str(tmp_path / "elsewhere"), "max_attempts": 3})
    with Store.open_readonly(config.store_path) as store:
        assert store_fingerprint(store, moved) == first                     # settings that change no number

    ids = {s.name: s.identity for s in config.systems}
    with Store(config.store_path) as store:
        store.add_scores([Score(ids["a"], "p0", 0, "other", 0.9)])          # a scorer the config does not name
    assert run_fingerprint(config) == first
    with Store(config.store_path) as store:
        store.add_scores([Score(ids["a"], "p0", 0, "judge", 0.9)])          # one that gates
    scored = run_fingerprint(config)
    assert scored != first
    with sqlite3.connect(config.store_path) as db:                          # one vector re-embedded
        text_hash, vector = db.execute("SELECT text_hash, vector FROM embeddings LIMIT 1").fetchone()
        db.execute("UPDATE embeddings SET vector = ? WHERE text_hash = ?", (vector[::-1], text_hash))
    db.close()
    assert run_fingerprint(config) != scored
