"""The collector against a real fake OpenAI server on 127.0.0.1 and a real SQLite store (litellm unpatched).

Fixtures (conftest.py): fake_server, collect_key (planted in COLLECT_KEY_VAR), write_config(systems, **settings).
"""
from __future__ import annotations

import json
import random
import re
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import COLLECT_KEY, COLLECT_KEY_VAR, COLLECT_PROMPTS
from fake_openai import ChatRecord, FakeOpenAI, answer_text

from hivemind import HivemindError
from hivemind.cli import main as cli_main
from hivemind.collect.stage import collect_run, sample_seed
from hivemind.core.config_files import load_config
from hivemind.core.retry import RetryPolicy
from hivemind.store import Store

ROOT = Path(__file__).resolve().parents[1]
PROMPT_TEXT = {p["id"]: p["prompt"] for p in COLLECT_PROMPTS}
N_PROMPTS = len(COLLECT_PROMPTS)


def rows(config, system_name: str | None = None) -> list[dict]:
    """Stored responses as dicts (optionally of one system, by its current identity)."""
    db = sqlite3.connect(config.store_path)
    db.row_factory = sqlite3.Row
    sql, args = "SELECT * FROM responses", ()
    if system_name is not None:
        sql, args = sql + " WHERE system_id = ?", (config.system(system_name).identity,)
    try:
        return [dict(r) for r in db.execute(sql, args)]
    finally:
        db.close()


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def served_model(model: str) -> str:
    return model.split("/", 1)[1]  # litellm sends "openai/x" as model "x"


def assert_answers_match_seeds(config, server=None) -> None:
    """Every stored text is what the server answers for that prompt and the sample's own seed (and,
    given the server, that it received that seed with that prompt)."""
    models = {s.identity: served_model(s.model) for s in config.systems}
    for row in rows(config):
        prompt = PROMPT_TEXT[row["prompt_id"]]
        assert row["seed"] == sample_seed(config.seed, row["prompt_id"], row["sample"])
        assert row["text"] == answer_text(models[row["system_id"]], prompt, row["seed"])
        if server is not None:
            assert server.by_key[(prompt, row["seed"])] >= 1


# --- the happy path, re-runs, identities ----------------------------------------------------------

def test_collect_stores_every_sample_with_its_seed_and_reruns_for_free(fake_server, collect_key, write_config):
    path = write_config([("alpha", "openai/alpha", fake_server.url), ("beta", "openai/beta", fake_server.url)])
    config = load_config(path)
    total = 2 * N_PROMPTS * config.samples

    summary = collect_run(config, progress=False)

    assert (summary.requested, summary.stored, summary.skipped) == (total, total, 0)
    assert summary.failed_permanent == summary.failed_transient == summary.retries == 0
    stored = rows(config)
    assert len(stored) == total
    for row in stored:
        assert row["text"] and row["error"] is None and row["finish_reason"] == "stop"
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0 and row["latency_s"] > 0
    assert_answers_match_seeds(config, fake_server)
    # one request per sample; the same (prompt, seed) once per system; samples of a prompt differ in seed
    assert fake_server.requests == total
    assert fake_server.by_model == {"alpha": total // 2, "beta": total // 2}
    assert set(fake_server.by_key.values()) == {2}
    assert len({r["seed"] for r in stored if r["prompt_id"] == "p-time"}) == config.samples
    assert (fake_server.auth_ok, fake_server.auth_bad) == (total, 0)   # the planted key was sent
    assert (config.run_dir / "config.yaml").is_file()

    fake_server.reset_counts()
    again = collect_run(load_config(path), progress=False)

    assert fake_server.requests == 0
    assert (again.requested, again.stored, again.skipped) == (0, 0, total)
    assert len(rows(config)) == total


def test_changed_params_make_a_new_identity_and_old_samples_stay(fake_server, collect_key, write_config):
    system = {"name": "alpha", "model": "openai/alpha", "api_base": fake_server.url,
              "api_key_env": COLLECT_KEY_VAR, "params": {"temperature": 1.0}}
    config = load_config(write_config([system]))
    collect_run(config, progress=False)
    old_id = config.systems[0].identity
    per_system = N_PROMPTS * config.samples

    changed = load_config(write_config([{**system, "params": {"temperature": 0.5}}]))
    new_id = changed.systems[0].identity
    fake_server.reset_counts()
    summary = collect_run(changed, progress=False)

    assert new_id != old_id
    assert (summary.requested, summary.stored, summary.skipped) == (per_system, per_system, 0)
    assert fake_server.requests == per_system
    by_id: dict[str, set] = {}
    for row in rows(changed):
        by_id.setdefault(row["system_id"], set()).add((row["prompt_id"], row["sample"]))
    assert set(by_id) == {old_id, new_id}
    assert by_id[old_id] == by_id[new_id] and len(by_id[new_id]) == per_system
    with Store(changed.store_path) as store:
        assert {s["id"]: s["params"] for s in store.systems()} == {
            old_id: '{"temperature": 1.0}', new_id: '{"temperature": 0.5}'}


# --- kill and resume ------------------------------------------------------------------------------

def stored_count(store_path: Path) -> int:
    if not store_path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:  # schema not written yet
        return 0


def test_sigkill_mid_run_then_resume_asks_only_for_what_is_missing(collect_key, write_config):
    with FakeOpenAI(delay=0.3) as server:
        system = {"name": "slow", "model": "openai/slow", "api_base": server.url,
                  "api_key_env": COLLECT_KEY_VAR, "concurrency": 2}
        path = write_config([system], samples=4)
        config = load_config(path)
        total = N_PROMPTS * config.samples   # 20 samples, 2 at a time, 0.3 s each: ~3 s of requests
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        process = subprocess.Popen([sys.executable, "-m", "hivemind.cli", "collect", str(path), "-q"],
                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 90
            while stored_count(config.store_path) < 3:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "the collector stored nothing in 90 s"
                time.sleep(0.02)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
            process.stderr.close()
        assert process.returncode == -signal.SIGKILL
        time.sleep(0.5)   # let requests the dead client already sent reach the counters before the reset

        with Store(config.store_path) as store:   # a killed writer leaves a store that opens
            after_kill = store.count_responses()
            kept = store.done_keys(config.systems[0].identity)
        assert 3 <= after_kill < total
        server.reset_counts()
        summary = collect_run(load_config(path), progress=False)

        assert server.requests == total - after_kill
        assert (summary.stored, summary.skipped) == (total - after_kill, after_kill)
        db = sqlite3.connect(config.store_path)
        keys = db.execute("SELECT prompt_id, sample FROM responses").fetchall()
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        assert len(keys) == len(set(keys)) == total
        assert set(keys) == {(p["id"], s) for p in COLLECT_PROMPTS for s in range(4)}
        assert_answers_match_seeds(config)
        asked = {(PROMPT_TEXT[p], sample_seed(config.seed, p, s)) for p, s in set(keys) - kept}
        assert set(server.by_key) == asked and set(server.by_key.values()) == {1}   # each missing one, once


# --- transient faults and Retry-After -------------------------------------------------------------

def test_thirty_percent_faults_every_sample_stored_and_retries_counted(collect_key, write_config):
    # seed 8: the first 20 draws hold each of the five fault kinds at least once
    with FakeOpenAI(seed=8, rate_429=0.06, rate_500=0.06, rate_hang=0.06, rate_malformed=0.06, rate_drop=0.06,
                    retry_after="0", hang_seconds=3) as server:
        path = write_config([("alpha", "openai/alpha", server.url), ("beta", "openai/beta", server.url)],
                            max_attempts=12, retry_base_delay=0.01, request_timeout=1)
        config = load_config(path)
        total = 2 * N_PROMPTS * config.samples

        summary = collect_run(config, progress=False)

        assert set(server.faults) == {"429", "500", "hang", "malformed", "drop"}
        assert (summary.stored, summary.failed_transient, summary.failed_permanent) == (total, 0, 0)
        # each fault costs one retry (a request slowed past the timeout by a busy machine would add one more)
        assert summary.retries == server.requests - total >= sum(server.faults.values()) > 0
        assert len(rows(config)) == total
        assert_answers_match_seeds(config, server)   # no broken body was stored as an answer


def attempt_gaps(log: list[ChatRecord]) -> dict[tuple, list[float]]:
    """Per (prompt, seed): the seconds between one attempt's response leaving the server and the next
    attempt arriving, from the server's own clock. A slow machine can only lengthen them."""
    attempts: dict[tuple, list[ChatRecord]] = {}
    for record in log:
        attempts.setdefault((record.prompt, record.seed), []).append(record)
    return {key: [after.arrived - before.answered for before, after in zip(tries, tries[1:])]
            for key, tries in attempts.items()}


def test_retry_after_is_honoured(collect_key, write_config, tmp_path):
    # seed 9: the first three requests draw a 429 (Retry-After: 1), the fourth an answer. The first wait
    # also holds litellm's one-off set-up of its error path (seconds on a loaded machine), so it alone would
    # pass even if the header were ignored; the later ones would not.
    with FakeOpenAI(seed=9, rate_429=0.5, retry_after="1") as server:
        config = load_config(write_config([("alpha", "openai/alpha", server.url)], samples=1, max_attempts=12,
                                          retry_base_delay=0.01, prompts=str(write_one_prompt(tmp_path))))
        summary = collect_run(config, progress=False)

    assert server.faults == {"429": 3} and server.requests == 4
    assert [r.outcome for r in server.log] == ["429", "429", "429", "answer"]
    assert (summary.stored, summary.retries) == (1, 3)
    [gaps] = attempt_gaps(server.log).values()
    assert min(gaps) >= 1.0   # the header's second; the backoff alone (base 0.01 s) would retry at once


def test_retry_delay_is_full_jitter_capped_and_never_shorter_than_retry_after():
    """The policy itself, no clock: attempt k waits uniform(0, min(max_delay, base * 2**k))."""
    policy = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=10.0)
    rng = random.Random(0)
    for attempt in range(7):
        cap = min(10.0, 0.5 * 2 ** attempt)
        delays = [policy.delay(attempt, None, rng) for _ in range(300)]
        assert all(0 <= d <= cap for d in delays), attempt
        assert len(set(delays)) == 300                              # jittered: no two workers wait alike
        assert max(delays) > 0.8 * cap and min(delays) < 0.2 * cap  # spread over the whole range
    assert all(policy.delay(a, 3.0, rng) >= 3.0 for a in range(7) for _ in range(50))   # Retry-After wins
    assert all(policy.delay(a, 30.0, rng) == 10.0 for a in range(3))                     # but max_delay caps it


def test_backoff_waits_grow_with_each_attempt_and_are_jittered(collect_key, write_config, tmp_path):
    """Every attempt of 6 samples answers 500 (transient, no Retry-After): 6 attempts each, and the waits
    the server sees between them are exponential backoff with full jitter (base 0.1 s: caps 0.1, 0.2, 0.4,
    0.8, 1.6 s). Only lower bounds and spread are asserted, so a loaded machine cannot trip them."""
    with FakeOpenAI(fail_models={"flaky": 500}) as server:
        flaky = {"name": "flaky", "model": "openai/flaky", "api_base": server.url, "api_key_env": COLLECT_KEY_VAR,
                 "concurrency": 6}
        config = load_config(write_config([flaky], samples=6, max_attempts=6,
                                          retry_base_delay=0.1, retry_max_delay=60,
                                          prompts=str(write_one_prompt(tmp_path))))
        with pytest.raises(HivemindError, match="still failing|failed"):
            collect_run(config, progress=False)

    gaps = attempt_gaps(server.log)
    assert len(gaps) == 6 and all(len(g) == 5 for g in gaps.values())   # 6 attempts per sample, no more
    assert {r.outcome for r in server.log} == {"fail"}
    # Exponential: 30 waits of a constant 0.1 s total 3 s at most; these average 6 x 1.55 s = 9.3 s
    # (standard deviation 1.3 s), so 3 s is missed only if the backoff stopped growing.
    assert sum(sum(g) for g in gaps.values()) > 3.0
    late = [wait for g in gaps.values() for wait in g[3:]]
    assert max(late) > 0.3       # 12 draws with caps 0.8 and 1.6 s: far past the first wait's cap (0.1 s)
    last = [g[-1] for g in gaps.values()]
    # Jitter: the six samples' fifth waits are not one fixed delay (uniform over 1.6 s: spread ~1.1 s).
    assert max(last) - min(last) > 0.1


def write_one_prompt(folder: Path) -> Path:
    path = folder / "one.jsonl"
    path.write_text(json.dumps(COLLECT_PROMPTS[0]) + "\n", encoding="utf-8")
    return path


def test_requests_in_flight_never_exceed_each_systems_concurrency(collect_key, write_config):
    def system(name, concurrency):
        return {"name": name, "model": f"openai/{name}", "api_base": server.url, "api_key_env": COLLECT_KEY_VAR,
                "concurrency": concurrency}

    with FakeOpenAI(delay=0.2) as server:   # each answer takes 0.2 s, so workers overlap
        config = load_config(write_config([system("wide", 3), system("narrow", 1)]))
        collect_run(config, progress=False)

    assert server.by_model == {"wide": 15, "narrow": 15}
    assert 1 < server.peak_in_flight_by_model["wide"] <= 3    # the bound allows 3: reached more than 1
    assert server.peak_in_flight_by_model["narrow"] == 1


# --- permanent errors -----------------------------------------------------------------------------

def test_context_too_long_is_stored_once_as_an_error_and_never_sent_again(collect_key, write_config):
    # p-name has 11 words, every other prompt at most 9: only its samples exceed a 10-token context
    with FakeOpenAI(max_prompt_tokens=10) as server:
        path = write_config([("alpha", "openai/alpha", server.url)], max_attempts=12)
        config = load_config(path)
        per_system = N_PROMPTS * config.samples
        long_prompt = PROMPT_TEXT["p-name"]

        summary = collect_run(config, progress=False)

        assert (summary.stored, summary.failed_permanent, summary.retries) == (per_system - 3, 3, 0)
        too_long = [r for r in server.log if r.prompt == long_prompt]
        assert len(too_long) == 3 and {r.outcome for r in too_long} == {"too_long"}   # once per sample
        stored = {(r["prompt_id"], r["sample"]): r for r in rows(config)}
        assert len(stored) == per_system
        for sample in range(3):
            row = stored[("p-name", sample)]
            assert row["text"] is None and row["error"].startswith("400")
            assert "maximum context length" in row["error"]
        assert all(r["text"] for key, r in stored.items() if key[0] != "p-name")

        server.reset_counts()
        again = collect_run(load_config(path), progress=False)
        assert server.requests == 0 and again.skipped == per_system   # the stored error is not re-sent
        assert len(rows(config)) == per_system


def test_forbidden_and_not_found_stop_their_system_after_one_answer(collect_key, write_config):
    def one_at_a_time(name):
        return {"name": name, "model": f"openai/{name}", "api_base": server.url, "api_key_env": COLLECT_KEY_VAR,
                "concurrency": 1}

    with FakeOpenAI(fail_models={"forbidden": 403, "gone": 404}) as server:
        config = load_config(write_config([("alpha", "openai/alpha", server.url), one_at_a_time("forbidden"),
                                           one_at_a_time("gone")], max_attempts=12))
        per_system = N_PROMPTS * config.samples

        with pytest.raises(HivemindError) as raised:
            collect_run(config, progress=False)

    message = str(raised.value)
    assert "'forbidden' stopped" in message and "403" in message
    assert "'gone' stopped" in message and "404" in message
    # one worker each: the first 403/404 ends the system; no retry, no second sample
    assert (server.by_model["forbidden"], server.by_model["gone"]) == (1, 1)
    assert server.by_model["alpha"] == per_system
    assert len(rows(config, "alpha")) == per_system
    assert rows(config, "forbidden") == [] and rows(config, "gone") == []   # not stored as answers


def test_bad_request_is_recorded_once_and_never_retried(collect_key, write_config):
    with FakeOpenAI(fail_models={"broken": 400}) as server:
        path = write_config([("broken", "openai/broken", server.url)], max_attempts=12)
        config = load_config(path)
        total = N_PROMPTS * config.samples

        # Every request failed for good: stored once each, and said so (with the first error), not "done".
        with pytest.raises(HivemindError, match="every request of system 'broken' failed.*first error: 400"):
            collect_run(config, progress=False)

        assert server.requests == server.by_model["broken"] == total
        stored = rows(config)
        assert len(stored) == total
        assert all(r["text"] is None and r["error"].startswith("400") for r in stored)

        server.reset_counts()
        with pytest.raises(HivemindError, match="--retry-errors"):
            collect_run(load_config(path), progress=False)
        assert server.requests == 0


def test_unauthorized_stops_that_system_and_keeps_the_others(collect_key, write_config):
    with FakeOpenAI(fail_models={"locked": 401}) as server:
        locked = {"name": "locked", "model": "openai/locked", "api_base": server.url,
                  "api_key_env": COLLECT_KEY_VAR, "concurrency": 2}
        config = load_config(write_config([("alpha", "openai/alpha", server.url), locked], max_attempts=12))
        per_system = N_PROMPTS * config.samples

        with pytest.raises(HivemindError) as raised:
            collect_run(config, progress=False)

        message = str(raised.value)
        assert "'locked' stopped" in message and "401" in message
        assert 1 <= server.by_model["locked"] <= 2        # stopped early: at most one request per worker
        assert server.by_model["alpha"] == per_system
        assert len(rows(config, "alpha")) == per_system     # the other system's answers are kept
        assert rows(config, "locked") == []                 # an auth failure is not an answer


def test_unreachable_api_base_is_a_clear_error_and_keeps_other_answers(fake_server, collect_key, write_config):
    down = f"http://127.0.0.1:{free_port()}/v1"
    config = load_config(write_config([("alpha", "openai/alpha", fake_server.url), ("down", "openai/down", down)],
                                      max_attempts=3))
    per_system = N_PROMPTS * config.samples

    with pytest.raises(HivemindError) as raised:
        collect_run(config, progress=False)

    message = str(raised.value)
    assert f"cannot reach {down}" in message   # given up as unreachable, not retried sample by sample
    assert "'down' stopped" in message and "Connection" in message
    assert len(rows(config, "alpha")) == per_system
    assert rows(config, "down") == []


# --- bad input: errors before any request, nothing written ----------------------------------------

def test_malformed_yaml_names_file_and_line_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text(f"name: x\nprompts: p.jsonl\nresults_dir: {tmp_path / 'results'}\n"
                    "systems:\n  - name: [unclosed\n", encoding="utf-8")

    assert cli_main(["collect", str(path), "-q"]) == 1

    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert f"{path}:5" in err or f"{path}:6" in err
    assert not (tmp_path / "results").exists()


def test_malformed_prompt_line_is_named_before_any_request(fake_server, collect_key, write_config, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(COLLECT_PROMPTS[0]) + "\n\n" + '{"id": "x", "prompt": "unfinished\n', encoding="utf-8")
    config = load_config(write_config([("alpha", "openai/alpha", fake_server.url)], prompts=str(bad)))

    with pytest.raises(HivemindError, match=f"{re.escape(str(bad))}:3: malformed JSON"):
        collect_run(config, progress=False)

    assert fake_server.requests == 0
    assert not (tmp_path / "results").exists()


def test_unknown_provider_fails_before_any_request(fake_server, collect_key, write_config, tmp_path):
    # litellm.get_llm_provider("nonsense-model-xyz") raises: no provider prefix it knows
    config = load_config(write_config([("alpha", "openai/alpha", fake_server.url),
                                       ("odd", "nonsense-model-xyz", fake_server.url)]))

    with pytest.raises(HivemindError, match="'odd'.*provider.*openai/nonsense-model-xyz"):
        collect_run(config, progress=False)

    assert fake_server.requests == 0
    assert not (tmp_path / "results").exists()


def test_missing_key_variable_fails_before_any_request(fake_server, write_config, monkeypatch, tmp_path):
    monkeypatch.delenv(COLLECT_KEY_VAR, raising=False)
    config = load_config(write_config([("alpha", "openai/alpha", fake_server.url)]))

    with pytest.raises(HivemindError, match=f"'alpha'.*{COLLECT_KEY_VAR}.*not set"):
        collect_run(config, progress=False)

    assert fake_server.requests == 0
    assert not (tmp_path / "results").exists()


# --- secrets --------------------------------------------------------------------------------------

class EchoKeyServer:
    """Answers every chat request with an error that quotes the Authorization header back, as some
    providers do ("Incorrect API key provided: sk-..."): model 'echo400' gets 400, anything else 401."""

    def __init__(self):
        self.seen_keys: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                outer.seen_keys.append(key)
                status = 400 if body.get("model") == "echo400" else 401
                payload = json.dumps({"error": {"message": f"Incorrect API key provided: {key}. Key {key} denied.",
                                                "type": "invalid_request_error", "code": "invalid_api_key"}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_api_key_reaches_the_server_and_no_file_or_message(fake_server, collect_key, write_config, tmp_path):
    echo = EchoKeyServer()
    try:
        path = write_config([("good", "openai/good", fake_server.url),
                             ("echo400", "openai/echo400", echo.url),
                             ("echo401", "openai/echo401", echo.url)])
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        result = subprocess.run([sys.executable, "-m", "hivemind.cli", "collect", str(path), "-q"], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=120)
    finally:
        echo.stop()
    config = load_config(path)
    per_system = N_PROMPTS * config.samples

    # the 401 system stops the run with a clear message and no traceback; the key is redacted there
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "'echo401' stopped" in result.stderr and "401" in result.stderr
    assert COLLECT_KEY not in result.stderr + result.stdout
    # the key did travel: the fake server matched it on every request, the echo server saw it
    assert (fake_server.auth_ok, fake_server.auth_bad) == (per_system, 0)
    assert set(echo.seen_keys) == {COLLECT_KEY}
    # the echoed key was in the 400 errors that are stored: redacted there too
    errors = [r["error"] for r in rows(config, "echo400")]
    assert len(errors) == per_system and all("***" in e for e in errors)
    assert len(rows(config, "good")) == per_system
    files = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    assert any(p.name == "store.sqlite" for p in files) and any(p.name == "config.yaml" for p in files)
    for file in files:   # SQLite file, its -wal/-shm if left, the run's config copy
        assert COLLECT_KEY.encode() not in file.read_bytes(), file


# --- the cost ceiling -----------------------------------------------------------------------------

def test_max_cost_stops_cleanly_and_keeps_what_was_bought(fake_server, collect_key, write_config):
    # litellm prices gpt-4o-mini from the usage the fake server reports, whatever api_base answers
    system = {"name": "mini", "model": "openai/gpt-4o-mini", "api_base": fake_server.url,
              "api_key_env": COLLECT_KEY_VAR, "params": {"max_tokens": 32}, "concurrency": 1}
    path = write_config([system], max_cost=1e-5)
    config = load_config(path)
    total = N_PROMPTS * config.samples

    with pytest.raises(HivemindError, match="max_cost"):
        collect_run(config, progress=False)

    stored = rows(config)
    db = sqlite3.connect(config.store_path)
    costs = [c for (c,) in db.execute("SELECT cost FROM responses ORDER BY rowid")]   # in commit order
    db.close()
    assert 1 <= len(stored) < total and fake_server.requests == len(stored)
    assert all(c is not None and c > 0 for c in costs)
    assert sum(costs) >= 1e-5 > sum(costs[:-1])   # one worker: stopped right after crossing the line

    fake_server.reset_counts()
    with pytest.raises(HivemindError, match="max_cost"):
        collect_run(load_config(path), progress=False)
    assert fake_server.requests == 0 and len(rows(config)) == len(stored)
