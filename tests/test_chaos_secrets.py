"""Chaos: keys planted in every place a user (or a provider) could put them never reach a file or a message.

Places: api_base credentials (user:pw@, ?key=, ?token=), request headers and bodies under any key name,
the model id, the embedder, and the values of the key variables that a provider echoes back in its error
messages (tests/fake_openai.py with echo_api_key). Every file under results/ and every message is searched.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fake_openai import FakeOpenAI

from hivemind import HivemindError
from hivemind.core.config_files import load_config
from hivemind.core.secrets import ALLOW_KEY_SHAPED, config_problems, find_key_shaped, redact, secret_values
from hivemind.results.scan import scan_paths

ROOT = Path(__file__).resolve().parents[1]
KEY_VAR = "HIVEMIND_CHAOS_KEY"
KEY = "sk-chaos-planted-7Qm2xR9vK4pL8wN3"             # the good key, in KEY_VAR
OTHER_VAR = "HIVEMIND_CHAOS_OTHER_KEY"
OTHER = "sk-chaos-other-Zt5bH1yJ6cF0gD2s"           # a wrong key, in OTHER_VAR: the server answers 401
PROVIDER = "sk-proj-chaosprovider8Hk3Lw7Pq1Xv5"     # OPENAI_API_KEY: never configured, still never written
INLINE = "sk-ant-api03-inlineKEY4f9G2h7J1k8L3m"     # a key pasted into a config: refused, never echoed
PROMPTS = [{"id": f"q{i}", "prompt": text, "category": "chaos"} for i, text in enumerate(
    ["Write a poem about rain.", "Name a colour you like.", "Give me a motto for a bakery."])]


def env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT),
            KEY_VAR: KEY, OTHER_VAR: OTHER, "OPENAI_API_KEY": PROVIDER}


@pytest.fixture
def planted(monkeypatch):
    monkeypatch.setenv(KEY_VAR, KEY)
    monkeypatch.setenv(OTHER_VAR, OTHER)
    monkeypatch.setenv("OPENAI_API_KEY", PROVIDER)


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=300)


def leaks(folder: Path, *secrets: str) -> list[str]:
    """Files under folder whose bytes hold a secret; Parquet files decoded too (compression hides text)."""
    found = []
    for path in (p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".parquet":
            data += pd.read_parquet(path).to_csv().encode()
        found += [f"{path} has {s[:8]}" for s in secrets if s.encode() in data]
    return found


def write_run(tmp_path: Path, systems: list[dict], name: str = "chaos", **settings) -> Path:
    prompts = tmp_path / "prompts.jsonl"
    if not prompts.exists():
        prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS), encoding="utf-8")
    data = {"name": name, "prompts": str(prompts), "samples": 2, "results_dir": str(tmp_path / "results"),
            "max_attempts": 2, "retry_base_delay": 0.01, "retry_max_delay": 0.05, "request_timeout": 10,
            "systems": systems, **settings}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def system(name: str, url: str = "http://127.0.0.1:9/v1", var: str = KEY_VAR, **changes) -> dict:
    return {"name": name, "model": f"openai/{name}", "api_base": url, "api_key_env": var,
            "params": {"temperature": 1.0, "max_tokens": 16}, "concurrency": 2, **changes}


# --- refused at config validation: the message names the setting, never the key ---------------------------

PLANTED_IN_CONFIG = [
    ("api_base user:password", {"api_base": f"http://user:{INLINE}@127.0.0.1:9/v1"}, "systems.0: api_base"),
    ("api_base user only", {"api_base": "https://someuser:hunter2pass@api.example.com/v1"}, "api_base"),
    ("api_base ?key=", {"api_base": f"http://127.0.0.1:9/v1?key={INLINE}"}, "api_base"),
    ("api_base ?token= (not key-shaped)", {"api_base": "http://127.0.0.1:9/v1?token=abc123def456"}, "api_base"),
    ("api_base ?code= (Azure Functions)", {"api_base": "https://f.azurewebsites.net/api?code=Zm9vYmFyYmF6cXV4"},
     "api_base"),
    ("api_base path", {"api_base": f"http://127.0.0.1:9/{INLINE}/v1"}, "api_base"),
    ("header, innocent name", {"params": {"extra_headers": {"X-Trace": INLINE}}}, "params.extra_headers.X-Trace"),
    ("header, Bearer under any name", {"params": {"extra_headers": {"X-Forward": "Bearer q8Rt5Lm2Nv7Kx1Zp"}}},
     "params.extra_headers.X-Forward"),
    ("header, credential name", {"params": {"extra_headers": {"Authorization": "whatever"}}},
     "params.extra_headers.Authorization"),
    ("body, nested list", {"params": {"extra_body": {"meta": [{"note": f"use {INLINE} here"}]}}},
     "params.extra_body.meta[0].note"),
    ("body, Google key", {"params": {"extra_body": {"x": "AIzaSyD4k9Lm2Qp7Rt1Vw8Xy3Zb6Nc0Fg5Hj"}}},
     "params.extra_body.x"),
    ("body, AWS key id", {"params": {"metadata": {"id": "AKIAIOSFODNN7EXAMPLE"}}}, "params.metadata.id"),
    ("body, HF token", {"params": {"extra_body": {"t": "hf_aB3dE5gH7jK9mN1pQ3sT5vW7yZ"}}}, "params.extra_body.t"),
    ("body, GitHub token", {"params": {"extra_body": {"t": "ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ0c2e4g6"}}},
     "params.extra_body.t"),
    ("body, Slack token", {"params": {"extra_body": {"t": "xoxb-123456789012-abcdefABCDEF"}}}, "params.extra_body.t"),
    ("model id", {"model": f"openai/{INLINE}"}, "systems.0: model"),
    ("api_key_env holds a key", {"api_key_env": INLINE}, "systems.0.api_key_env"),
    ("a key as a dict key", {"params": {"logit_bias": {INLINE: 5}}}, "params.logit_bias"),
]


@pytest.mark.parametrize("label, changes, setting", PLANTED_IN_CONFIG, ids=[c[0] for c in PLANTED_IN_CONFIG])
def test_a_credential_in_a_config_is_refused_by_setting_never_echoed(tmp_path, label, changes, setting):
    path = write_run(tmp_path, [system("s", **changes)])
    with pytest.raises(HivemindError) as raised:
        load_config(path)
    message = str(raised.value)
    assert setting in message
    assert "api_key_env" in message or "NAME of an environment variable" in message
    for secret in (INLINE, "hunter2pass", "abc123def456", "q8Rt5Lm2Nv7Kx1Zp", "Zm9vYmFyYmF6cXV4", "AIzaSyD4k9",
                   "AKIAIOSFODNN7", "hf_aB3dE5", "ghp_aB3dE5", "xoxb-1234"):
        assert secret not in message


@pytest.mark.parametrize("embedder, setting", [
    ({"provider": "litellm", "model": "openai/emb", "api_base": "https://u:p4ssw0rd99@emb.example.com/v1"},
     "embedder.api_base"),
    ({"provider": "litellm", "model": f"openai/{INLINE}"}, "embedder.model"),
])
def test_the_embedder_is_checked_too(tmp_path, embedder, setting):
    path = write_run(tmp_path, [system("s")], embedder=embedder)
    with pytest.raises(HivemindError) as raised:
        load_config(path)
    assert setting.split(".")[0] in str(raised.value) and setting.split(".")[1] in str(raised.value)
    assert INLINE not in str(raised.value) and "p4ssw0rd99" not in str(raised.value)


def test_ordinary_params_are_not_taken_for_keys(tmp_path):
    params = {"temperature": 0.7, "top_p": 0.9, "min_p": 0.05, "max_tokens": 256, "seed": 3,
              "stop": ["\n\nUser:", "</s>", "###"], "logit_bias": {"50256": -100, "1234": 5},
              "extra_headers": {"HTTP-Referer": "https://example.org/hivemind", "X-Title": "hivemind bench"},
              "extra_body": {"top_k": 40, "repetition_penalty": 1.1, "user": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
                             "provider": {"order": ["Together", "DeepInfra"]}}}
    systems = [system("task-specific-model-v2", params=params, model="openai/my-task-specific-model-v2"),
               system("Meta-Llama-3.1-405B@top-p", model="together_ai/meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo",
                      url="https://api.together.xyz/v1?api-version=2024-02-01")]
    config = load_config(write_run(tmp_path, systems))
    assert config.systems[0].params == params
    assert config_problems(config.public_dict()) == []


def test_a_refused_config_through_the_cli_is_one_clean_message(tmp_path):
    path = write_run(tmp_path, [system("s", api_base=f"http://admin:{INLINE}@127.0.0.1:9/v1")])
    proc = cli("collect", path, "-q", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "api_base" in proc.stderr and "user:password@host" in proc.stderr
    assert INLINE not in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()      # refused before anything was written


# --- key values echoed by a provider: redacted in messages and stored error rows --------------------------

def test_keys_a_provider_echoes_in_errors_reach_no_message_and_no_file(tmp_path):
    """The fake server quotes the Authorization header in every error, as some providers do: a 400 (stored as
    an error row), a 500 on every attempt (printed as 'still failing'), and a 401 for a wrong key (stops the
    system). None of the keys may be printed or stored; the mask shows the redaction happened."""
    fails = {"bad-request": 400, "flaky": 500}
    with FakeOpenAI(expected_api_key=KEY, enforce_api_key=True, echo_api_key=True, fail_models=fails) as server:
        systems = [system("good", server.url), system("bad-request", server.url), system("flaky", server.url),
                   system("wrong-key", server.url, var=OTHER_VAR)]
        path = write_run(tmp_path, systems)
        proc = cli("collect", path, "-q", cwd=tmp_path)
        assert server.auth_bad > 0 and server.auth_ok > 0    # both keys really were sent (and echoed)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out
    assert "'wrong-key' stopped" in out and "401" in out and "still failing" in out
    assert "***" in out                                   # the echoed key was there, and was masked
    for secret in (KEY, OTHER, PROVIDER):
        assert secret not in out
    assert leaks(tmp_path / "results", KEY, OTHER, PROVIDER) == []
    with sqlite3.connect(tmp_path / "results" / "chaos" / "store.sqlite") as db:
        errors = [row[0] for row in db.execute("SELECT error FROM responses WHERE error IS NOT NULL")]
    assert len(errors) == len(PROMPTS) * 2 and all("***" in e and KEY not in e for e in errors)


def test_redact_masks_every_key_variable_and_key_shaped_text(planted):
    text = f"401: Incorrect API key provided: {KEY}; also {OTHER}, {PROVIDER} and Bearer {INLINE}"
    clean = redact(text)
    assert all(s not in clean for s in (KEY, OTHER, PROVIDER, INLINE)) and clean.count("***") >= 4
    assert {KEY_VAR, OTHER_VAR, "OPENAI_API_KEY"} <= set(secret_values())
    assert redact("model openai/gpt-4o-mini at http://127.0.0.1:8765/v1") == \
        "model openai/gpt-4o-mini at http://127.0.0.1:8765/v1"


# --- the final scan of written files ---------------------------------------------------------------------

RANDOM_KEY = "sk-proj-4fG9hJ2kL7mN1pQ8rS3tV6wX0yZ"


def plant_everywhere(folder: Path, secret: str) -> dict[str, Path]:
    """One file of every kind the pipeline writes, each holding `secret`."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": folder / "table.csv", "json": folder / "analysis.json", "md": folder / "report.md",
        "html": folder / "report.html", "yaml": folder / "config.yaml", "parquet": folder / "responses.parquet",
    }
    files["csv"].write_text(f"system,text\na,\"{secret}\"\n")
    files["json"].write_text(json.dumps({"note": secret}))
    files["md"].write_text(f"| a | {secret} |\n")
    files["html"].write_text(f"<td>{secret}</td>")
    files["yaml"].write_text(yaml.safe_dump({"params": {"x": secret}}))
    # Twice: the second copy is a back-reference in the compressed bytes, and the column is dictionary-encoded.
    pd.DataFrame({"text": [f"a {secret} b", f"c {secret} d"] * 50}).to_parquet(files["parquet"], compression="zstd")
    return files


@pytest.mark.parametrize("kind", ["csv", "json", "md", "html", "yaml", "parquet"])
def test_scan_finds_a_key_value_in_each_kind_of_file_and_removes_it(tmp_path, planted, kind):
    files = plant_everywhere(tmp_path / "all", KEY)
    target = files[kind]
    with pytest.raises(HivemindError) as raised:
        scan_paths([target], remove=True)
    message = str(raised.value)
    assert str(target) in message and KEY_VAR in message and KEY not in message
    assert not target.exists()                         # removed: never left behind for a later publish


def test_scan_finds_a_key_value_in_a_store_but_never_deletes_the_store(tmp_path, planted):
    from hivemind.store import Prompt, Response, Store

    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        store.add_system("sid", "s", "openai/s", None, {})
        store.add_prompts([Prompt("p1", "Say hi.")])
        # Long enough to spill over a SQLite page: the key may then be split in the file's bytes.
        store.add_response(Response("sid", "p1", 0, "x" * 5000 + f" debug {KEY} " + "y" * 5000))
    with pytest.raises(HivemindError, match=rf"store.sqlite \(the value of {KEY_VAR}\)"):
        scan_paths([tmp_path], remove=True)
    assert path.exists()


def test_scan_finds_random_key_shapes_but_not_made_up_examples(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    plant_everywhere(folder, RANDOM_KEY)
    with pytest.raises(HivemindError) as raised:
        scan_paths([folder])
    assert raised.value.args[0].count("(a key-shaped string sk-…)") == 6 and RANDOM_KEY not in str(raised.value)

    examples = tmp_path / "examples"
    plant_everywhere(examples, "openai.api_key = 'sk-your-api-key-here'; or sk-1234567890abcdef; "
                               "sk-xxxxxxxxxxxxxxxxxxxxxxxx; Bearer YOUR_TOKEN; a task-specific-model-0123456789")
    scan_paths([examples])                             # model answers with made-up keys are not leaks
    monkeypatch.setenv(ALLOW_KEY_SHAPED, "1")
    scan_paths([folder])                               # the user may allow key shapes...
    monkeypatch.setenv(KEY_VAR, KEY)
    plant_everywhere(tmp_path / "values", KEY)
    with pytest.raises(HivemindError):                 # ...but never a key variable's value
        scan_paths([tmp_path / "values"])


def test_key_shapes_have_word_edges_and_known_prefixes():
    assert find_key_shaped("model my-task-specific-model-2024abc") == []
    assert find_key_shaped("deepseek-chat-v2-0628-abcdefgh") == []
    assert find_key_shaped(f"key={INLINE}") == [INLINE]
    assert find_key_shaped("AKIAIOSFODNN7EXAMPLE and eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.sig")


# --- the whole pipeline with planted keys: nothing in results/ or in any message --------------------------

def test_a_full_run_with_planted_keys_writes_and_prints_none(tmp_path):
    """collect -> embed (litellm embedder on the fake server) -> analyze -> report -> leaderboard ->
    snapshot publish -> import of that snapshot, all through the CLI, with three key variables set."""
    with FakeOpenAI(expected_api_key=KEY, enforce_api_key=True, echo_api_key=True) as server:
        embedder = {"provider": "litellm", "model": "openai/fake-embed", "api_base": server.url,
                    "api_key_env": KEY_VAR}
        path = write_run(tmp_path, [system("alpha", server.url), system("beta", server.url)], embedder=embedder)
        results = tmp_path / "results"
        outputs = []
        for args in (("collect", path, "-q"), ("embed", path, "-q"), ("analyze", path, "-q"), ("report", path),
                     ("leaderboard", "--results", results), ("snapshot", "publish", path, "--name", "snap"),
                     ("import", results / "snapshots" / "snap", "--name", "again", "--results", results)):
            proc = cli(*args, cwd=tmp_path)
            outputs.append(proc.stdout + proc.stderr)
            assert proc.returncode == 0, (args, proc.stderr)
        assert server.auth_ok > 0 and server.auth_bad == 0
    assert (results / "chaos" / "report.html").is_file() and (results / "leaderboard.csv").is_file()
    assert (results / "snapshots" / "snap" / "manifest.json").is_file()
    assert leaks(results, KEY, OTHER, PROVIDER) == []
    assert not any(s in out for out in outputs for s in (KEY, OTHER, PROVIDER))


def test_a_key_value_in_a_prompt_stops_analyze_and_leaves_no_table(tmp_path, planted):
    """A user pasted their key into a prompt: the answers echo it, so every table holding prompt or answer
    text would publish it. analyze refuses and removes what it wrote; the message names files, not the key."""
    from hivemind.analyze import stage as analyze
    from hivemind.collect import stage as collect
    from hivemind.embed import stage as embed

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS)
                       + json.dumps({"id": "leak", "prompt": f"My key {KEY} fails, why?"}) + "\n")
    with FakeOpenAI(expected_api_key=KEY, enforce_api_key=True) as server:
        embedder = {"provider": "litellm", "model": "openai/fake-embed", "api_base": server.url,
                    "api_key_env": KEY_VAR}
        config = load_config(write_run(tmp_path, [system("alpha", server.url), system("beta", server.url)],
                                       embedder=embedder))
        collect.collect_run(config, progress=False)
        embed.embed_run(config, progress=False)
    with pytest.raises(HivemindError) as raised:
        analyze.analyze_run(config, progress=False)
    assert KEY_VAR in str(raised.value) and KEY not in str(raised.value)
    written = [p for p in config.run_dir.iterdir() if p.suffix in {".csv", ".json"}]
    assert [p for p in written if KEY.encode() in p.read_bytes()] == []
