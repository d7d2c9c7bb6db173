"""Chaos scenarios for the orchestrator, against real components: `hivemind` CLI subprocesses, the fake
OpenAI server (tests/fake_openai.py) on loopback, real SQLite, real signals, and - for SIGTERM during
`hivemind run` - the real bundled llama.cpp servers on ports of their own (never the shared 8765-8767).

Each test states the guarantee it checks in its name. Fixtures (conftest.py, collector section):
collect_key, write_config(systems, **settings).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import COLLECT_KEY, COLLECT_KEY_VAR, COLLECT_PROMPTS
from fake_openai import FakeOpenAI

from hivemind import HivemindError
from hivemind.collect import local_server
from hivemind.cli import main as cli_main
from hivemind.collect.stage import collect_run
from hivemind.core.config_files import load_config
from hivemind.core.lock import LOCK_NAME, RunLock, process_start_time, read_holder

ROOT = Path(__file__).resolve().parents[1]
N_PROMPTS = len(COLLECT_PROMPTS)


def env() -> dict:
    """The environment at call time (the collect_key fixture plants the key in it)."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}


def start_cli(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hivemind.cli", *map(str, args)], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *map(str, args)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, err


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stored_keys(store_path: Path, answered_only: bool = False) -> list[tuple]:
    if not store_path.exists():
        return []
    db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
    try:
        where = " WHERE text IS NOT NULL" if answered_only else ""
        return db.execute(f"SELECT system_id, prompt_id, sample FROM responses{where}").fetchall()
    except sqlite3.OperationalError:   # schema not written yet
        return []
    finally:
        db.close()


def integrity(store_path: Path) -> str:
    db = sqlite3.connect(store_path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def wait_until(condition, process: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {process.communicate()}")
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def slow_system(url: str, name: str = "slow", concurrency: int = 2) -> dict:
    return {"name": name, "model": f"openai/{name}", "api_base": url, "api_key_env": COLLECT_KEY_VAR,
            "params": {"max_tokens": 16}, "concurrency": concurrency}


# --- the run lock ---------------------------------------------------------------------------------------

def test_concurrent_collectors_never_ask_twice_second_refuses_naming_holder_or_waits(collect_key, write_config):
    with FakeOpenAI(delay=0.3, expected_api_key=COLLECT_KEY) as server:
        path = write_config([slow_system(server.url)], samples=4)
        config = load_config(path)
        total = N_PROMPTS * config.samples          # 20 samples, 2 at a time, 0.3 s each: >= 3 s of requests
        first = start_cli("collect", path, "-q")
        try:
            wait_until(lambda: (h := read_holder(config.run_dir)) is not None and h.pid == first.pid, first,
                       "lock held by the first collector")
            refused = run_cli("collect", path, "-q")
            waiting = start_cli("collect", path, "-q", "--wait")
            first_code, first_out, first_err = finish(first)
            wait_code, wait_out, wait_err = finish(waiting)
        finally:
            first.kill()

        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert f"pid {first.pid}" in refused.stderr and "collect" in refused.stderr and "--wait" in refused.stderr
        assert first_code == 0, first_err
        assert f"collected {total} new answers" in first_out
        assert wait_code == 0, wait_err
        assert f"collected 0 new answers ({total} already stored" in wait_out   # waited, then had nothing to ask
        assert "waiting for run" in wait_err
        keys = stored_keys(config.store_path, answered_only=True)
        assert server.requests == len(keys) == len(set(keys)) == total     # the bill equals the samples
        assert set(server.by_key.values()) == {1}
        assert read_holder(config.run_dir) is None                          # released at the end


def test_stale_lock_of_a_sigkilled_collector_is_taken_over_and_the_run_resumes(collect_key, write_config):
    with FakeOpenAI(delay=0.3, expected_api_key=COLLECT_KEY) as server:
        path = write_config([slow_system(server.url)], samples=4)
        config = load_config(path)
        total = N_PROMPTS * config.samples
        killed = start_cli("collect", path, "-q")
        try:
            wait_until(lambda: len(stored_keys(config.store_path)) >= 3, killed, "3 stored answers")
        finally:
            os.kill(killed.pid, signal.SIGKILL)
            finish(killed)
        stale = read_holder(config.run_dir)
        assert stale is not None and stale.pid == killed.pid and stale.stage == "collect"   # its body is left

        resumed = run_cli("collect", path, "-q")

        assert resumed.returncode == 0, resumed.stderr
        assert "took over the lock" in resumed.stderr and f"pid {killed.pid}" in resumed.stderr
        keys = stored_keys(config.store_path)
        assert len(keys) == len(set(keys)) == total
        assert integrity(config.store_path) == "ok"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc for process start times")
def test_lock_body_of_a_live_holder_refuses_and_a_recycled_pid_is_taken_over(tmp_path):
    """Where flock does not hold (a filesystem without it), the body still protects the run: a live process
    with the recorded start time holds it; the same pid with another start time is a recycled pid."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        body = {"pid": holder.pid, "start_time": process_start_time(holder.pid), "host": socket.gethostname(),
                "command": "hivemind collect other.yaml", "stage": "collect", "since": "2026-01-01T00:00:00Z"}
        (run_dir / LOCK_NAME).write_text(json.dumps(body))
        with pytest.raises(HivemindError) as refused:
            with RunLock(run_dir, "embed", notify=lambda _text: None):
                pass
        assert f"pid {holder.pid}" in str(refused.value) and "hivemind collect other.yaml" in str(refused.value)

        notes = []
        (run_dir / LOCK_NAME).write_text(json.dumps({**body, "start_time": "1"}))   # same pid, other process
        with RunLock(run_dir, "embed", notify=notes.append):
            assert read_holder(run_dir).pid == os.getpid()
        assert any("took over" in note for note in notes)
        assert read_holder(run_dir) is None
    finally:
        holder.kill()
        holder.wait()


def test_collect_counts_only_rows_really_inserted_even_without_the_lock(collect_key, write_config):
    """Two library-level collectors (no orchestrator, so no lock) on one run: whatever they send, the
    answers they report as stored add up to the rows in the store."""
    with FakeOpenAI(delay=0.1, expected_api_key=COLLECT_KEY) as server:
        system = slow_system(server.url, concurrency=1)
        collect_run(load_config(write_config([system], samples=1)), progress=False)   # the store exists
        path = write_config([system], samples=2)
        config = load_config(path)
        server.reset_counts()
        script = textwrap.dedent(f"""
            import json, sys
            from hivemind.collect.stage import collect_run
            from hivemind.core.config_files import load_config
            s = collect_run(load_config({str(path)!r}), progress=False)
            print(json.dumps({{"stored": s.stored, "duplicates": s.duplicates}}))
        """)
        both = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [finish(p) for p in both]

    for code, _out, err in results:
        assert code == 0, err
    counts = [json.loads(out) for _code, out, _err in results]
    assert sum(c["stored"] for c in counts) == len(stored_keys(config.store_path)) - N_PROMPTS == N_PROMPTS
    assert sum(c["stored"] + c["duplicates"] for c in counts) == server.answers   # every answer accounted for


# --- endpoints that will not heal -----------------------------------------------------------------------

def test_dead_endpoint_and_unknown_host_fail_fast_naming_api_base_and_keep_other_answers(collect_key,
                                                                                         write_config, capsys):
    refused = f"http://127.0.0.1:{free_port()}/v1"
    no_host = "http://hivemind-no-such-host.invalid/v1"
    with FakeOpenAI(expected_api_key=COLLECT_KEY) as server:
        # The default retry settings: 8 attempts, backoff from 1 s up to 60 s, would take minutes.
        path = write_config([("alive", "openai/alive", server.url), ("refused", "openai/refused", refused),
                             ("nohost", "openai/nohost", no_host)],
                            max_attempts=8, retry_base_delay=1.0, retry_max_delay=60.0)
        config = load_config(path)
        # How fast (the bound: under 60 s; 8 full backoffs take minutes): benchmarks/bench_fail_fast.py.
        code = cli_main(["collect", str(path), "-q"])

    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert f"cannot reach {refused}: Connection refused" in err
    assert f"cannot reach {no_host}: Host name lookup failed" in err
    assert "'refused' stopped" in err and "'nohost' stopped" in err
    per_system = N_PROMPTS * config.samples
    assert len(stored_keys(config.store_path, answered_only=True)) == per_system   # alive's answers kept
    assert server.requests == per_system


def test_a_bundled_model_on_a_dead_port_says_how_to_start_it(collect_key, write_config):
    """Called without the orchestrator (which would start it), collect names the fix."""
    port = free_port()
    system = {"name": "local", "model": f"openai/{local_server.SMOLLM2.alias}",
              "api_base": f"http://127.0.0.1:{port}/v1", "params": {"max_tokens": 8}}
    config = load_config(write_config([system], max_attempts=3))
    with pytest.raises(HivemindError) as raised:
        collect_run(config, progress=False)
    message = str(raised.value)
    assert f"cannot reach http://127.0.0.1:{port}/v1" in message
    assert "`hivemind run` and `hivemind collect` start it" in message
    assert "serve-local" in local_server.how_to_start(local_server.SMOLLM2.api_base, "openai/anything")


# --- a run whose every request failed -------------------------------------------------------------------

def test_all_400_run_says_so_everywhere_then_retry_errors_resends_after_the_fix(collect_key, write_config,
                                                                               capsys):
    with FakeOpenAI(fail_status=400, expected_api_key=COLLECT_KEY) as server:
        path = write_config([("alpha", "openai/alpha", server.url)])
        config = load_config(path)
        total = N_PROMPTS * config.samples

        assert cli_main(["collect", str(path), "-q"]) == 1
        err = capsys.readouterr().err
        assert "every request of system 'alpha' failed" in err and "the first error: 400" in err
        assert "--retry-errors" in err
        assert server.requests == total and len(stored_keys(config.store_path, answered_only=True)) == 0
        for stage in ("embed", "analyze"):
            assert cli_main([stage, str(path), "-q"]) == 1
            err = capsys.readouterr().err
            assert "the first error: 400" in err and "--retry-errors" in err, stage
            assert "no stored responses" not in err and "Traceback" not in err, stage

        server.reset_counts()
        assert cli_main(["collect", str(path), "-q"]) == 1     # a plain re-run sends nothing, says the same
        assert "--retry-errors" in capsys.readouterr().err and server.requests == 0

        server.configure(fail_status=None)                     # the user fixed the server
        server.reset_counts()
        assert cli_main(["collect", str(path), "-q", "--retry-errors"]) == 0
        out = capsys.readouterr().out
        assert f"collected {total} new answers" in out and f"{total} stored errors re-sent" in out
        assert server.requests == total and set(server.by_key.values()) == {1}
        keys = stored_keys(config.store_path)
        assert len(keys) == len(set(keys)) == len(stored_keys(config.store_path, answered_only=True)) == total

        server.reset_counts()
        assert cli_main(["collect", str(path), "-q", "--retry-errors"]) == 0   # no errors left: nothing sent
        assert server.requests == 0


# --- signals --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_a_signal_during_collect_exits_with_its_code_releases_the_lock_and_resumes_exactly(signum, collect_key,
                                                                                         write_config):
    with FakeOpenAI(delay=0.3, expected_api_key=COLLECT_KEY) as server:
        path = write_config([slow_system(server.url)], samples=4)
        config = load_config(path)
        total = N_PROMPTS * config.samples
        process = start_cli("collect", path, "-q")
        try:
            wait_until(lambda: len(stored_keys(config.store_path)) >= 2, process, "2 stored answers")
            process.send_signal(signum)
            code, _out, err = finish(process, timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert code == 128 + signum, err
        assert signal.Signals(signum).name in err and "Traceback" not in err
        assert read_holder(config.run_dir) is None
        assert integrity(config.store_path) == "ok"
        kept = set(stored_keys(config.store_path))
        assert 2 <= len(kept) < total

        time.sleep(0.5)   # requests the stopped client had in flight reach the counters before the reset
        server.reset_counts()
        resumed = run_cli("collect", path, "-q")
        assert resumed.returncode == 0, resumed.stderr
        assert server.requests == total - len(kept)              # only the missing samples, each once
        assert set(stored_keys(config.store_path)) >= kept and len(stored_keys(config.store_path)) == total


@pytest.mark.slow
def test_sigterm_during_run_stops_its_local_servers_keeps_the_store_and_resumes(tmp_path):
    ports = [free_port(), free_port()]
    assert not set(ports) & {m.port for m in local_server.MODELS}
    config_path = tmp_path / "term.yaml"
    config_path.write_text(textwrap.dedent(f"""
        name: term
        prompts: {ROOT / "prompts" / "demo.jsonl"}
        limit: 3
        samples: 4
        results_dir: {tmp_path / "results"}
        systems:
          - name: smollm2-top-p
            model: openai/{local_server.SMOLLM2.alias}
            api_base: http://127.0.0.1:{ports[0]}/v1
            params: {{temperature: 1.0, top_p: 0.9, max_tokens: 24}}
            concurrency: 1
          - name: smollm2-min-p
            model: openai/{local_server.SMOLLM2.alias}
            api_base: http://127.0.0.1:{ports[1]}/v1
            params: {{temperature: 2.0, top_p: 1.0, min_p: 0.1, max_tokens: 24}}
            concurrency: 1
    """))
    config = load_config(config_path)
    total = 2 * 3 * 4
    run = start_cli("run", config_path, "-q")
    try:
        wait_until(lambda: len(stored_keys(config.store_path)) >= 1, run, "a stored answer", timeout=300)
        assert all(listening(port) for port in ports)    # the orchestrator started both servers
        run.send_signal(signal.SIGTERM)
        code, _out, err = finish(run, timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()

    assert code == 128 + signal.SIGTERM, err
    assert "SIGTERM" in err and "Traceback" not in err
    assert not any(listening(port) for port in ports)     # no server left behind
    assert read_holder(config.run_dir) is None             # lock released
    assert integrity(config.store_path) == "ok"
    kept = stored_keys(config.store_path)
    assert 1 <= len(kept) < total and len(kept) == len(set(kept))

    resumed = run_cli("collect", config_path, "-q", timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"collected {total - len(kept)} new answers ({len(kept)} already stored" in resumed.stdout
    assert not any(listening(port) for port in ports)     # collect, too, stops what it started
    assert set(kept) <= set(stored_keys(config.store_path)) and len(stored_keys(config.store_path)) == total
