"""The results folder's one write path (hivemind.results.folder): staged, scanned for secrets, renamed into
place; the staging removed on any exit, signals included; every writing command under the run lock; only
that module puts files into the results folder (checked in the source and by watching a real session)."""
from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hivemind import HivemindError
from hivemind.results import folder as results_folder
from hivemind.core.config import RunConfig, System
from hivemind.core.config_files import load_config
from hivemind.core.lock import RunLock
from hivemind.results.folder import results_root, write_text, writing

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hivemind"
KEY_VAR = "HIVEMIND_TEST_RESULTS_KEY"
KEY = "sk-results-folder-SECRET-98f3a1c2d4e5"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}


def cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *map(str, args)], env=env or ENV, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def keyed_config(tmp_path: Path) -> RunConfig:
    return RunConfig(name="keyed", prompts="prompts.jsonl", results_dir=str(tmp_path),
                     systems=[System(name="a", model="openai/x", api_base="http://127.0.0.1:9", api_key_env=KEY_VAR)])


def staging_left(folder: Path) -> list[Path]:
    return list(Path(folder).rglob(f"{results_folder.STAGING_PREFIX}*"))


# The mechanism -------------------------------------------------------------------------------------------
def test_files_land_together_and_the_staging_is_gone(tmp_path):
    with writing(tmp_path / "run") as out:
        out.text("a.txt", "one")
        out.json("b.json", {"x": 1})
        assert not (tmp_path / "run" / "a.txt").exists()      # nothing lands before the block ends
    assert (tmp_path / "run" / "a.txt").read_text() == "one"
    assert json.loads((tmp_path / "run" / "b.json").read_text()) == {"x": 1}
    assert sorted(p.name for p in out.written) == ["a.txt", "b.json"]
    assert staging_left(tmp_path) == []


def test_an_error_lands_nothing_and_keeps_the_previous_files(tmp_path):
    write_text(tmp_path / "run" / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with writing(tmp_path / "run") as out:
            out.text("a.txt", "new")
            out.text("b.txt", "new")
            raise RuntimeError("boom")
    assert (tmp_path / "run" / "a.txt").read_text() == "old"
    assert not (tmp_path / "run" / "b.txt").exists()
    assert staging_left(tmp_path) == []


def test_a_secret_in_any_staged_file_refuses_the_whole_set(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VAR, KEY)
    config = keyed_config(tmp_path)
    write_text(tmp_path / "run" / "table.csv", "old")
    with pytest.raises(HivemindError, match="secret") as caught:
        with writing(tmp_path / "run", config=config) as out:
            out.text("table.csv", "fine")
            out.text("notes.md", f"the answer echoed {KEY}")
    assert KEY not in str(caught.value)
    assert (tmp_path / "run" / "table.csv").read_text() == "old"
    assert not (tmp_path / "run" / "notes.md").exists()
    assert staging_left(tmp_path) == []


@pytest.mark.parametrize("container", ["zip", "nested zip", "gzip"])
def test_compressed_containers_are_decoded_before_the_scan(tmp_path, monkeypatch, container):
    """A grep of the bytes misses a key inside a deflated member; the scan reads the members."""
    import gzip
    import io

    monkeypatch.setenv(KEY_VAR, KEY)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("samples/1.json", json.dumps({"output": f"here is the key {KEY} " + "x" * 500}))
    data = inner.getvalue()
    if container == "nested zip":
        outer = io.BytesIO()
        with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("inner.eval", data)
        data = outer.getvalue()
    elif container == "gzip":
        data = gzip.compress(f"key {KEY} ".encode() * 50)
    assert KEY.encode() not in data                         # the bytes on disk do not spell it
    with pytest.raises(HivemindError, match="secret"):
        with writing(tmp_path / "run", config=keyed_config(tmp_path)) as out:
            out.bytes("log.eval", data)
    assert not (tmp_path / "run" / "log.eval").exists()


STAGE_AND_WAIT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hivemind.results.folder import writing
    with writing(Path(sys.argv[1])) as out:
        out.text("half.txt", "written, not yet published")
        print("staged", flush=True)
        time.sleep(120)
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_mid_write_removes_the_staging(tmp_path, signum):
    folder = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", STAGE_AND_WAIT, str(folder)], env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "staged"
    assert len(staging_left(folder)) == 1                  # the file is really in a staging folder now
    process.send_signal(signum)
    process.communicate(timeout=60)
    assert process.returncode != 0
    assert staging_left(folder) == []
    assert not (folder / "half.txt").exists()


def test_a_sigkilled_writers_staging_is_removed_by_the_next_write(tmp_path):
    folder = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", STAGE_AND_WAIT, str(folder)], env=ENV,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "staged"
    process.kill()
    process.wait(timeout=60)
    assert len(staging_left(folder)) == 1                  # SIGKILL cannot be caught: it is left behind
    write_text(folder / "next.txt", "next")
    assert staging_left(folder) == []


# The results folder's location ---------------------------------------------------------------------------
def test_results_root_order(monkeypatch, tmp_path):
    monkeypatch.delenv(results_folder.ENV_VAR, raising=False)
    assert results_root() == Path("results")
    monkeypatch.setenv(results_folder.ENV_VAR, str(tmp_path / "env"))
    assert results_root() == tmp_path / "env"
    assert results_root(tmp_path / "flag") == tmp_path / "flag"


def test_a_config_file_without_results_dir_follows_the_variable(tmp_path, monkeypatch):
    """`collect CONFIG` ignored $HIVEMIND_RESULTS: a config file that sets no results_dir now follows it; one
    that sets it keeps its own."""
    path = tmp_path / "my.yaml"
    path.write_text("name: envrun\nprompts: prompts.jsonl\nsystems:\n  - {name: a, model: openai/x}\n")
    monkeypatch.setenv(results_folder.ENV_VAR, str(tmp_path / "elsewhere"))
    assert load_config(path).run_dir == tmp_path / "elsewhere" / "envrun"
    path.write_text(path.read_text() + f"results_dir: {tmp_path / 'own'}\n")
    assert load_config(path).run_dir == tmp_path / "own" / "envrun"


def test_import_and_list_follow_the_variable(tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"prompt": f"Question {i}?", "response": f"Answer {i} of {m}.",
                                           "model": m}) + "\n" for i in range(3) for m in ("m1", "m2")))
    env = {**ENV, results_folder.ENV_VAR: str(tmp_path / "env-results")}
    done = cli("import", answers, "--name", "imported", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "env-results" / "imported" / "store.sqlite").is_file()
    assert not (tmp_path / "results").exists()
    listed = cli("list", env=env, cwd=tmp_path)
    assert "imported" in listed.stdout, listed.stdout + listed.stderr


# Every writing command holds the run lock -------------------------------------------------------------------
@pytest.fixture(scope="module")
def analysed_run(tmp_path_factory):
    from synthetic_run import Answer, make_run

    from hivemind.store import Prompt

    root = tmp_path_factory.mktemp("locked")
    rng = np.random.default_rng(1)
    prompts = [Prompt(f"p{i}", f"Tell me about thing {i}.", "creative") for i in range(3)]
    answers = [Answer(s, p.id, k, f"{s} answer {k} to {p.id} " + "word " * (4 + k), rng.normal(size=8))
               for s in ("alpha", "beta") for p in prompts for k in range(2)]
    config = make_run(root, ["alpha", "beta"], prompts, answers, samples=2, name="locked")
    done = cli("analyze", config.run_dir, "-q")
    assert done.returncode == 0, done.stderr
    return config


WRITERS = {
    "analyze": lambda run: ["analyze", run, "-q"],
    "report": lambda run: ["report", run, "-q"],
    "clusters": lambda run: ["clusters", run, "--prompt", "p1", "-k", "2"],
    "categories": lambda run: ["categories", run],
    "classify": lambda run: ["classify", run, "--model", "openai/x", "--api-base", "http://127.0.0.1:9"],
    "agreement": lambda run: ["agreement", run, "--embedder", "all-MiniLM-L6-v2", "--embedder",
                              "tokenlearn-static-model"],
    "export": lambda run: ["export", "inspect", run],
    "snapshot create": lambda run: ["snapshot", "create", run, "--name", "never"],
    "merge": lambda run: ["merge", run, Path(run) / "store.sqlite"],
    "embed": lambda run: ["embed", run, "-q"],
    "collect": lambda run: ["collect", run, "-q"],
}


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_every_writing_command_is_refused_while_another_holds_the_run(analysed_run, command):
    run = analysed_run.run_dir
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    with RunLock(run, "a test holding the run"):
        done = cli(*WRITERS[command](str(run)))
    assert done.returncode == 1, (command, done.stdout, done.stderr)
    assert "is busy" in done.stderr and "a test holding the run" in done.stderr, done.stderr
    after = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before                                     # nothing was written
    assert not (run.parent / "snapshots" / "never").exists()


def test_leaderboard_holds_the_results_folders_lock(analysed_run):
    root = analysed_run.run_dir.parent
    with RunLock(root, "a test holding the results folder"):
        done = cli("leaderboard", "update", "--results", root)
    assert done.returncode == 1 and "a test holding the results folder" in done.stderr, done.stderr
    assert not (root / "leaderboard.csv").exists()
    done = cli("leaderboard", "update", "--results", root)
    assert done.returncode == 0, done.stderr
    assert (root / "leaderboard.csv").is_file()


# An echoed key in an export ------------------------------------------------------------------------------
def test_export_inspect_refuses_an_answer_that_echoes_a_key(tmp_path):
    """Inspect's .eval logs are zips: the key sat deflated inside them, where a grep of the bytes misses it.
    analyze refuses the same run; export now does too, and writes no log at all."""
    import inspect_ai  # noqa: F401  (the dev extra: a missing one fails here, never skips)
    from synthetic_run import Answer, make_run

    from hivemind.store import Prompt

    rng = np.random.default_rng(2)
    prompts = [Prompt("p0", "Say something.")]
    answers = [Answer("a", "p0", 0, f"My key is {KEY}, use it well", rng.normal(size=4)),
               Answer("a", "p0", 1, "Another answer entirely.", rng.normal(size=4))]
    config = make_run(tmp_path / "results", ["a"], prompts, answers, name="echo")
    data = config.model_dump()
    data["systems"][0]["api_key_env"] = KEY_VAR            # not part of the identity: the answers still match
    (config.run_dir / "config.yaml").write_text(json.dumps({k: v for k, v in data.items() if k != "results_dir"}))
    env = {**ENV, KEY_VAR: KEY}
    done = cli("export", "inspect", config.run_dir, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "secret" in done.stderr and KEY not in done.stderr + done.stdout
    folder = config.run_dir / "inspect"
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]
    assert staging_left(config.run_dir) == []


# Only the results module writes there -------------------------------------------------------------------------
# Modules allowed to rename files or make temporary folders of their own, and why (none writes under results/).
OWN_FILES = {
    "hivemind/results/folder.py": "the results folder's one write path",
    "hivemind/embed/backends.py": "the ONNX graph cache under the user cache folder (HIVEMIND_CACHE), not results/",
    "hivemind/collect/local_server.py": "llama.cpp server logs under the user cache folder, not results/",
    "hivemind/collect/routes.py": "`python -m hivemind.collect.routes` regenerates the packaged paper.yaml, not results/",
}
RENAMING = {("os", "replace"), ("os", "rename"), ("shutil", "move"), ("tempfile", "mkdtemp"),
            ("tempfile", "mkstemp"), ("tempfile", "TemporaryDirectory"), ("tempfile", "NamedTemporaryFile")}


def _renames(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and (owner.id, node.func.attr) in RENAMING:
                found.append((node.lineno, f"{owner.id}.{node.func.attr}"))
            elif node.func.attr == "rename":
                found.append((node.lineno, ".rename"))
    return found


def test_no_other_module_renames_files_into_place():
    """Putting a finished file in place is the results module's job; a module that renames files or makes
    its own temporary folder is writing around it (the store's SQLite files are SQLite's own)."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in OWN_FILES or rel.startswith("hivemind/store"):
            continue
        for line, what in _renames(ast.parse(path.read_text(encoding="utf-8"))):
            offenders.append(f"{rel}:{line}: {what}")
    assert offenders == []


def test_the_lint_would_catch_a_rename():
    sample = "import os, tempfile\nos.replace(a, b)\ntmp = tempfile.mkdtemp()\nPath(x).rename(y)\n"
    assert [what for _, what in _renames(ast.parse(sample))] == ["os.replace", "tempfile.mkdtemp", ".rename"]


def test_a_whole_session_writes_under_results_only_through_the_results_module(tmp_path):
    """An audit hook sees every file opened for writing, every rename and every SQLite connection under the
    results folder, from analyze to merge (tests/audit_session.py)."""
    results = tmp_path / "results"
    out = tmp_path / "audit.json"
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "audit_session.py"), str(results), str(out)],
                          env=ENV, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(out.read_text())
    assert all(code == 0 for _, code in seen["codes"]), (seen["codes"], done.stderr[-3000:])
    # the hook really saw the session: files renamed into place by the results module, and staged writes
    renamed = [e for e in seen["events"] if e["event"] == "rename" and e["by"] == "hivemind.results.folder"]
    assert {Path(e["path"]).name for e in renamed} >= {"analysis.json", "report.html", "leaderboard.csv"}
    assert any(".staging-" in e["path"] for e in seen["events"] if e["event"] == "write")
    assert seen["violations"] == []
    assert staging_left(results) == []


def test_a_relative_results_folder_works_and_names_cannot_leave_the_staging(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with writing(Path("results") / "run") as out:
        out.text("sub/table.csv", "x")
    assert (tmp_path / "results" / "run" / "sub" / "table.csv").read_text() == "x"
    with pytest.raises(HivemindError, match="not a file name inside"):
        with writing(Path("results") / "run") as out:
            out.text("../escaped.txt", "x")
    assert not (tmp_path / "results" / "escaped.txt").exists()


def test_calibrate_refuses_while_its_folder_is_held(tmp_path):
    """calibrate writes results/<name>/ (a scoring store and its tables) under that folder's lock."""
    from calibration_fixture import build

    absolute, _ = build(tmp_path / "ratings", n_instructions=2)
    folder = tmp_path / "results" / "calibration"
    with RunLock(folder, "a test holding the calibration"):
        done = cli("calibrate", "-q", "--absolute", absolute, "--results", tmp_path / "results")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "a test holding the calibration" in done.stderr, done.stderr
    assert [p.name for p in folder.iterdir()] == [".lock"]        # nothing scored, nothing written


def test_a_signal_while_files_are_renamed_is_delivered_after_all_have_landed(tmp_path):
    """The renames run with SIGINT/SIGTERM/SIGHUP held back: a stop never lands half a set."""
    from hivemind.core.signals import Interrupted, deferred, signals_handled

    landed = []
    with pytest.raises(Interrupted) as caught:
        with signals_handled():
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)       # a real signal, held back here
                time.sleep(0.05)
                landed.append("everything")
    assert landed == ["everything"] and caught.value.signum == signal.SIGTERM


def test_a_command_that_fails_under_the_lock_leaves_no_phantom_run(tmp_path):
    """clusters on a run never collected: refused, and the run folder the lock made is gone again."""
    config = tmp_path / "new.yaml"
    config.write_text(f"name: never-collected\nprompts: p.jsonl\nresults_dir: {tmp_path / 'results'}\n"
                      "systems:\n  - {name: a, model: openai/x}\n")
    done = cli("clusters", config, "--prompt", "p1")
    assert done.returncode == 1 and "no store" in done.stderr, done.stderr
    assert not (tmp_path / "results").exists()


def test_a_bad_calibration_name_is_one_line_and_creates_nothing(tmp_path):
    done = cli("calibrate", "--name", "../outside", "--absolute", tmp_path / "x.jsonl", "--results", tmp_path / "r")
    assert done.returncode == 1 and "Traceback" not in done.stderr and "calibration name" in done.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "outside").exists()


def test_wait_given_before_a_nested_action_is_kept():
    from hivemind.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["leaderboard", "--wait", "update"]).wait is True
    assert parser.parse_args(["leaderboard", "update", "--wait"]).wait is True
    assert parser.parse_args(["snapshot", "--wait", "create", "run"]).wait is True
    assert parser.parse_args(["leaderboard"]).wait is False


def test_links_and_damaged_containers_are_refused_in_one_line(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("whatever")
    with pytest.raises(HivemindError, match="a link"):
        with writing(tmp_path / "run") as out:
            out.path("linked.txt").symlink_to(outside)
    assert not (tmp_path / "run" / "linked.txt").exists()
    import io

    good = io.BytesIO()
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("member.json", "x" * 5000)
    data = bytearray(good.getvalue())
    data[60:120] = b"\0" * 60                              # the deflate stream damaged
    with pytest.raises(HivemindError, match="damaged compressed file"):
        with writing(tmp_path / "run") as out:
            out.bytes("log.eval", bytes(data))


def test_a_scorers_key_variable_is_scanned_for_its_value(tmp_path, monkeypatch):
    from hivemind.core.config import Scorer

    monkeypatch.setenv("JUDGE_CRED", "judge-credential-value-1234")
    config = RunConfig(name="judged", prompts="p.jsonl", results_dir=str(tmp_path),
                       systems=[System(name="a", model="m")],
                       scorers=[Scorer(name="j", kind="judge", model="openai/x", api_key_env="JUDGE_CRED")])
    with pytest.raises(HivemindError, match="JUDGE_CRED"):
        write_text(tmp_path / "run" / "notes.txt", "the judge said judge-credential-value-1234", config)
