"""Shared pytest fixtures. Each section belongs to one group of tests; keep them apart."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).parent))

from fake_openai import FakeOpenAI  # noqa: E402

# =================================================================================================
# Collector tests (test_collect.py): a fake OpenAI server on loopback, a planted API key, and
# config files written into tmp_path with results under tmp_path/"results".
# =================================================================================================

COLLECT_KEY = "sk-hivemind-test-SECRET-1234"    # planted in COLLECT_KEY_VAR; must never reach a file
COLLECT_KEY_VAR = "HIVEMIND_TEST_API_KEY"
COLLECT_PROMPTS = [
    {"id": "p-time", "category": "creative", "prompt": "Write a metaphor about time."},
    {"id": "p-sea", "category": "creative", "prompt": "Write a four-line poem about the sea at night."},
    {"id": "p-name", "category": "naming", "prompt": "Suggest a name for a bakery that only opens at night."},
    {"id": "p-advice", "category": "advice", "prompt": "How should I spend a free Sunday afternoon?"},
    {"id": "p-joke", "category": "humor", "prompt": "Tell me a joke about a lighthouse keeper."},
]


@pytest.fixture
def collect_key(monkeypatch) -> str:
    """The fake key, planted in the environment variable the configs name in api_key_env."""
    monkeypatch.setenv(COLLECT_KEY_VAR, COLLECT_KEY)
    return COLLECT_KEY


@pytest.fixture
def fake_server():
    """A fault-free fake OpenAI server that counts whether it received the planted key."""
    with FakeOpenAI(expected_api_key=COLLECT_KEY) as server:
        yield server


@pytest.fixture
def collect_prompts(tmp_path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in COLLECT_PROMPTS), encoding="utf-8")
    return path


@pytest.fixture
def write_config(tmp_path, collect_prompts):
    """write_config(systems, **settings) -> path of a YAML config in tmp_path.

    A system given as (name, model, api_base) gets api_key_env and small params; a dict is used as is.
    Defaults: 3 samples, quick retries, results_dir tmp_path/"results"."""

    def write(systems, file_name: str = "config.yaml", **settings) -> Path:
        data = {
            "name": "collect-test",
            "prompts": str(collect_prompts),
            "samples": 3,
            "results_dir": str(tmp_path / "results"),
            "max_attempts": 4,
            "retry_base_delay": 0.01,
            "request_timeout": 5,
            "systems": [system_entry(s) for s in systems],
        }
        data.update(settings)
        path = tmp_path / file_name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write


def system_entry(system) -> dict:
    if isinstance(system, dict):
        return system
    name, model, api_base = system
    return {"name": name, "model": model, "api_base": api_base, "api_key_env": COLLECT_KEY_VAR,
            "params": {"temperature": 1.0, "max_tokens": 32}, "concurrency": 4}
