"""Inputs validated once, at the edge: every numeric setting finite and in range (config files through one
pydantic base model, command-line values through argparse `type=` functions), repeated flags used once,
credentials in a command-line URL refused, `run --engine ray` checking its address before collecting, and
collect streaming its work instead of listing every (prompt, sample) first.

Against real components: config files on disk, `python -m hivemind.cli` subprocesses (or its main()), the
fake OpenAI server on 127.0.0.1 (tests/fake_openai.py), real SQLite stores, real signals."""
from __future__ import annotations

import hashlib
import inspect
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import COLLECT_KEY, COLLECT_PROMPTS
from fake_openai import FakeOpenAI

from hivemind import HivemindError
from hivemind.cli import build_parser
from hivemind.cli import main as cli_main
from hivemind.core.config_files import load_config

ROOT = Path(__file__).resolve().parents[1]
N_PROMPTS = len(COLLECT_PROMPTS)


def env() -> dict:
    """The environment at call time (the collect_key fixture plants the key in it)."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}


def hivemind(*args, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stored_keys(store_path: Path) -> list[tuple]:
    if not store_path.exists():
        return []
    db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT system_id, prompt_id, sample FROM responses WHERE text IS NOT NULL").fetchall()
    except sqlite3.OperationalError:   # schema not written yet
        return []
    finally:
        db.close()


def raw_config(tmp_path: Path, collect_prompts: Path, url: str = "http://127.0.0.1:9/v1", **lines: str) -> Path:
    """A config file whose settings in `lines` are written verbatim (YAML `.inf`, `nan`, `1e999` as typed)."""
    data = {"name": "valid-test", "prompts": str(collect_prompts), "samples": 2,
            "results_dir": str(tmp_path / "results"), "retry_base_delay": 0.01, "request_timeout": 5,
            "systems": [{"name": "s", "model": "openai/s", "api_base": url, "api_key_env": "HIVEMIND_TEST_API_KEY",
                         "params": {"max_tokens": 16}}]}
    text = yaml.safe_dump({k: v for k, v in data.items() if k not in lines}, sort_keys=False)
    text += "".join(f"{key}: {value}\n" for key, value in lines.items())
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- config files: finite and in range, the setting named ------------------------------------------------

@pytest.mark.parametrize("setting, value", [
    ("request_timeout", ".inf"),          # was sent to the provider and came back as a 500
    ("request_timeout", "1e12"),          # finite, but no request waits 30,000 years
    ("retry_base_delay", "nan"),          # pydantic reads the string "nan" as a float NaN
    ("retry_base_delay", ".nan"),
    ("retry_max_delay", "-.inf"),
    ("max_cost", "inf"),
    ("max_cost", ".inf"),
    ("samples", "1e999"),
    ("samples", "1.0e+999"),              # a YAML float: infinity
    ("samples", "-3"),
    ("samples", "10000000000"),           # more than SQLite's sample numbers should ever hold
    ("limit", "0"),
    ("near_duplicate_threshold", ".nan"),
])
def test_a_non_finite_or_out_of_range_setting_is_refused_naming_file_and_setting(tmp_path, collect_prompts,
                                                                                   setting, value):
    path = raw_config(tmp_path, collect_prompts, **{setting: value})
    with pytest.raises(HivemindError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: invalid config:"), message
    assert f"  {setting}: " in message, message


@pytest.mark.parametrize("params, named", [
    ('{max_tokens: "lots"}', "max_tokens"),           # plan multiplied the string: a traceback
    ("{max_tokens: 0}", "max_tokens"),
    ("{max_tokens: 12.5}", "max_tokens"),
    ("{max_tokens: true}", "max_tokens"),
    ("{temperature: .nan}", "temperature"),
    ("{temperature: -1}", "temperature"),
    ("{top_p: 1.5}", "top_p"),
    ("{extra_body: {penalty: [1, .inf]}}", "extra_body.penalty[1]"),   # any number anywhere: finite
])
def test_decoding_params_hivemind_reads_or_sends_are_checked_at_load(tmp_path, collect_prompts, params, named):
    path = raw_config(tmp_path, collect_prompts)
    text = path.read_text(encoding="utf-8").replace("params:\n    max_tokens: 16", f"params: {params}")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HivemindError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "systems.0.params: " in message and named in message, message


def test_every_scorer_setting_is_finite_too(tmp_path, collect_prompts):
    path = raw_config(tmp_path, collect_prompts, scorers="[{name: rel, kind: relevance, pass_at: .nan}]")
    with pytest.raises(HivemindError, match=r"scorers\.0\.pass_at: "):
        load_config(path)


def test_valid_params_and_the_packaged_configs_still_load(tmp_path, collect_prompts):
    path = raw_config(tmp_path, collect_prompts)
    text = path.read_text(encoding="utf-8").replace(
        "params:\n    max_tokens: 16",
        "params: {max_tokens: 16, temperature: 0, top_p: 1, min_p: 0.1, top_k: -1, seed: 7, stop: ['\\n'], "
        "extra_body: {repetition_penalty: 1.1}}")
    path.write_text(text, encoding="utf-8")
    assert load_config(path).systems[0].params["top_k"] == -1
    for name in ("demo", "paper"):
        load_config(ROOT / "hivemind" / "configs" / f"{name}.yaml")


def test_request_timeout_inf_never_reaches_the_provider(tmp_path, collect_prompts, collect_key):
    with FakeOpenAI(expected_api_key=COLLECT_KEY) as server:
        path = raw_config(tmp_path, collect_prompts, server.url, request_timeout=".inf")
        result = hivemind("collect", path, "-q", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"error: {path}: invalid config:") and "request_timeout" in result.stderr
        assert "Traceback" not in result.stderr
        assert server.requests == 0
    assert not (tmp_path / "results").exists()


def test_plan_of_a_bad_config_is_one_error_not_a_traceback_or_a_negative_plan(tmp_path, collect_prompts):
    for settings in ({"samples": "-3"}, {}):
        path = raw_config(tmp_path, collect_prompts, **settings)
        if not settings:
            path.write_text(path.read_text(encoding="utf-8").replace("max_tokens: 16", 'max_tokens: "lots"'),
                            encoding="utf-8")
        result = hivemind("plan", path, cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        named = "samples" if settings else "max_tokens"
        assert "Traceback" not in result.stderr and named in result.stderr, result.stderr
        assert "answers" not in result.stdout


# --- the command line: argparse type= functions, one definition each --------------------------------------

@pytest.mark.parametrize("argv, flag", [
    (["import", "--scores", "s.jsonl", "--name", "r", "--scorer", "x", "--pass-at", "nan"], "--pass-at"),
    (["import", "--scores", "s.jsonl", "--name", "r", "--scorer", "x", "--pass-at", "inf"], "--pass-at"),
    (["embed", "demo", "--engine", "ray", "--workers", "-3"], "--workers"),
    (["embed", "demo", "--engine", "ray", "--workers", "0"], "--workers"),   # was taken as "the default"
    (["score", "demo", "--engine", "ray", "--gpus", "-1"], "--gpus"),
    (["run", "demo", "--engine", "ray", "--workers", "two"], "--workers"),
    (["plan", "demo", "--prompts", "-5"], "--prompts"),
    (["plan", "demo", "--prompts", "0"], "--prompts"),
    (["plan", "demo", "--settings", "0"], "--settings"),
    (["reproduce", "paper", "--threshold", "inf"], "--threshold"),
    (["reproduce", "paper", "--samples", "-1"], "--samples"),
    (["reproduce", "paper", "--limit", "0"], "--limit"),
    (["calibrate", "--tukey-k", "1.5", "nan"], "--tukey-k"),
    (["calibrate", "--bootstrap", "0"], "--bootstrap"),
    (["clusters", "demo", "--prompt", "p", "-k", "0"], "-k"),
    (["categories", "demo", "--min-prompts", "-2"], "--min-prompts"),
])
def test_a_bad_number_on_the_command_line_is_a_usage_error_naming_the_flag(tmp_path, monkeypatch, capsys,
                                                                            argv, flag):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        cli_main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []          # nothing ran, nothing was written


def test_finite_numbers_on_the_command_line_still_parse():
    args = build_parser().parse_args(["import", "--scores", "s", "--name", "r", "--scorer", "x", "--pass-at", "-3.25"])
    assert args.pass_at == -3.25
    args = build_parser().parse_args(["embed", "demo", "--engine", "ray", "--workers", "2", "--gpus", "0"])
    assert (args.workers, args.gpus) == (2, 0)
    assert build_parser().parse_args(["calibrate", "--tukey-k", "0", "1.5"]).tukey_k == [0.0, 1.5]


def test_workers_below_one_is_refused_by_the_real_cli(tmp_path):
    result = hivemind("embed", "demo", "--engine", "ray", "--workers", "-3", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "argument --workers: must be 1 or more, not -3" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argv, dest, expected", [
    (["collect", "r", "--system", "A", "--system", "B", "--system", "A"], "system", ["A", "B"]),
    (["score", "r", "--scorer", "j", "--scorer", "j"], "scorer", ["j"]),
    (["agreement", "r", "--embedder", "e1", "--embedder", "e2", "--embedder", "e1"], "embedder", ["e1", "e2"]),
    (["calibrate", "--scorer", "p", "--scorer", "p"], "scorer", ["p"]),
])
def test_a_value_repeated_on_the_command_line_is_used_once(argv, dest, expected):
    assert getattr(build_parser().parse_args(argv), dest) == expected


def test_collect_with_a_system_named_twice_asks_for_it_once(tmp_path, collect_key, write_config):
    with FakeOpenAI(expected_api_key=COLLECT_KEY) as server:
        path = write_config([("A", "openai/a", server.url), ("B", "openai/b", server.url)], samples=2)
        result = hivemind("collect", path, "-q", "--system", "A", "--system", "A", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert server.requests == N_PROMPTS * 2          # the old code asked for every sample twice
        assert "already stored" in result.stdout and "answers came for samples already stored" not in result.stdout
    config = load_config(path)
    assert len(stored_keys(config.store_path)) == N_PROMPTS * 2


# --- credentials in a command-line URL -------------------------------------------------------------------

def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_classify_refuses_an_api_base_with_credentials_and_writes_nothing(tmp_path, collect_key, write_config):
    with FakeOpenAI(expected_api_key=COLLECT_KEY) as server:
        path = write_config([("A", "openai/a", server.url)], samples=1)
        assert hivemind("collect", path, "-q", cwd=tmp_path).returncode == 0
        config = load_config(path)
        before = _file_digest(config.store_path)
        server.reset_counts()
        port = server.url.split(":")[2].split("/")[0]
        for url in (f"http://user:pw-secret@127.0.0.1:{port}/v1",
                    f"http://127.0.0.1:{port}/v1?api_key=sk-abcdefghijklmnopqrstuvwxyz123456"):
            result = hivemind("classify", path, "--model", "openai/classifier", "--api-base", url,
                              "--api-key-env", "HIVEMIND_TEST_API_KEY", cwd=tmp_path)
            assert result.returncode == 2, result.stderr
            assert "argument --api-base: the URL" in result.stderr and "nothing was written" in result.stderr
            assert "pw-secret" not in result.stderr and "sk-abcdef" not in result.stderr
            assert "Traceback" not in result.stderr
        assert server.requests == 0
        assert _file_digest(config.store_path) == before
        # The library call (no argparse in front) refuses as well, before reading or writing anything.
        from hivemind.studies.classify import classify_run

        with pytest.raises(HivemindError, match="classifier api_base: the URL holds credentials") as raised:
            classify_run(config, "openai/classifier", f"http://user:pw-secret@127.0.0.1:{port}/v1",
                         "HIVEMIND_TEST_API_KEY", progress=False)
        assert "pw-secret" not in str(raised.value)
        assert _file_digest(config.store_path) == before and server.requests == 0


def test_a_ray_address_with_credentials_is_refused():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["embed", "r", "--engine", "ray", "--ray-address", "ray://u:secret@10.0.0.1:10001"])


# --- run --engine ray: the address before the money ------------------------------------------------------

def test_run_on_a_dead_ray_address_fails_before_any_request(tmp_path, collect_key, write_config):
    dead = f"127.0.0.1:{free_port()}"
    with FakeOpenAI(expected_api_key=COLLECT_KEY) as server:
        path = write_config([("A", "openai/a", server.url)], samples=2)
        result = hivemind("run", path, "-q", "--engine", "ray", "--ray-address", dead, cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
        assert dead in result.stderr or "hivemind-bench[ray]" in result.stderr, result.stderr
        assert server.requests == 0                       # the old code collected (and paid) first
    assert not load_config(path).run_dir.exists()        # not even a lock file


# --- collect streams its work ----------------------------------------------------------------------------

def test_the_plan_is_lazy_and_counted_without_a_list(tmp_path, write_config):
    from hivemind.collect.stage import missing_samples
    from hivemind.collect.prompts import load_prompts

    config = load_config(write_config([("A", "openai/a", "http://127.0.0.1:9/v1")], samples=1_000_000))
    todo, = missing_samples(config, config.systems, load_prompts(config))
    assert inspect.isgenerator(todo.keys)
    assert todo.count == N_PROMPTS * 1_000_000
    first = [next(todo.keys) for _ in range(3)]
    assert [(prompt.id, sample) for prompt, sample in first] == [("p-time", 0), ("p-time", 1), ("p-time", 2)]


def test_the_plan_skips_stored_keys_and_counts_stored_errors_for_retry(tmp_path, collect_key, write_config):
    from hivemind.collect.stage import missing_samples
    from hivemind.collect.prompts import load_prompts
    from hivemind.store import Response, Store

    with FakeOpenAI(expected_api_key=COLLECT_KEY) as server:
        path = write_config([("A", "openai/a", server.url)], samples=2)
        assert hivemind("collect", path, "-q", cwd=tmp_path).returncode == 0
    config = load_config(path)
    system = config.systems[0]
    with Store(config.store_path) as store:   # one answer turned into a stored error
        store.db.execute("DELETE FROM responses WHERE prompt_id = 'p-sea' AND sample = 1")
        store.insert_response(Response(system.identity, "p-sea", 1, None, seed=1, error="400 too long"))
    bigger = config.model_copy(update={"samples": 3})
    todo, = missing_samples(bigger, bigger.systems, load_prompts(bigger))
    assert todo.count == N_PROMPTS and {p.id for p, s in todo.keys} == {p["id"] for p in COLLECT_PROMPTS}
    todo, = missing_samples(bigger, bigger.systems, load_prompts(bigger), retry_errors=True)
    assert (todo.count, todo.retried) == (N_PROMPTS + 1, 1)
    assert ("p-sea", 1) in {(p.id, s) for p, s in todo.keys}


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


PEAK_RSS_LIMIT_MB = 400


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")
def test_a_million_samples_per_prompt_start_at_once_in_little_memory_and_stop_on_sigterm(tmp_path, collect_key,
                                                                                           write_config):
    with FakeOpenAI(expected_api_key=COLLECT_KEY, delay=0.05) as server:
        path = write_config([("A", "openai/a", server.url)], samples=1_000_000)
        config = load_config(path)
        process = subprocess.Popen([sys.executable, "-m", "hivemind.cli", "collect", str(path), "-q"],
                                   cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 240
            while len(stored_keys(config.store_path)) < 3:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "no answer stored within 240 s"
                time.sleep(0.1)
            peak = peak_rss_mb(process.pid)
            process.send_signal(signal.SIGTERM)
            _out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM" in err and "Traceback" not in err
    assert len(stored_keys(config.store_path)) >= 3
    assert peak < PEAK_RSS_LIMIT_MB, f"peak RSS {peak:.0f} MB before the first answers"


def test_workers_below_one_is_refused_from_python_too(tmp_path):
    """The stage functions share the CLI's rule: workers=0 is an error, not "one per CPU"."""
    from hivemind import HivemindError, pipeline
    from hivemind.core.config import RunConfig, System

    config = RunConfig(name="w", prompts="p.jsonl", results_dir=str(tmp_path), systems=[System(name="a", model="m")])
    for call in (lambda: pipeline.embed(config, engine="ray", workers=0),
                 lambda: pipeline.score(config, engine="ray", workers=-3),
                 lambda: pipeline.run(config, engine="ray", workers=0)):
        with pytest.raises(HivemindError, match="must be 1 or more"):
            call()
    assert not (tmp_path / "w").exists()
