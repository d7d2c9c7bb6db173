"""The embedded default against the real llama.cpp servers with the two bundled models."""
from __future__ import annotations

import sqlite3
import textwrap

import pytest

from hivemind.collect import local_server
from hivemind.collect.stage import collect_run
from hivemind.core.config_files import load_config
from local_fixture import local_servers  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slow


def write_config(folder, results, samples=2, limit=3):
    path = folder / "local.yaml"
    path.write_text(textwrap.dedent(f"""
        name: local
        prompts: {local_server_prompts()}
        limit: {limit}
        samples: {samples}
        results_dir: {results}
        systems:
          - name: smollm2-top-p
            model: openai/{local_server.SMOLLM2.alias}
            api_base: {local_server.SMOLLM2.api_base}
            params: {{temperature: 1.0, top_p: 0.9, max_tokens: 24}}
          - name: gemma3-base-min-p
            model: openai/{local_server.GEMMA3.alias}
            api_base: {local_server.GEMMA3.api_base}
            params: {{temperature: 2.0, top_p: 1.0, min_p: 0.1, max_tokens: 24}}
    """))
    return path


def local_server_prompts():
    from pathlib import Path
    return Path(__file__).resolve().parents[1] / "prompts" / "demo.jsonl"


def stored(results):
    with sqlite3.connect(results / "local" / "store.sqlite") as db:
        return db.execute("SELECT s.name, r.prompt_id, r.sample, r.seed, r.text, r.finish_reason, "
                          "r.completion_tokens FROM responses r JOIN systems s ON s.id = r.system_id "
                          "ORDER BY 1, 2, 3").fetchall()


def test_bundled_model_files_exist():
    for model in (local_server.SMOLLM2, local_server.GEMMA3):
        path = local_server.model_path(model)
        assert path.stat().st_size > 50_000_000, path  # a real GGUF, not a placeholder
        assert path.read_bytes()[:4] == b"GGUF"


def test_full_collection_is_reproducible(local_servers, tmp_path):
    first = collect_run(load_config(write_config(tmp_path, tmp_path / "a")), progress=False)
    assert first.stored == 2 * 3 * 2 and first.complete
    rows = stored(tmp_path / "a")
    assert len(rows) == 12
    assert all(text and text.strip() for *_, text, _, _ in rows)
    assert all(finish in ("stop", "length") and tokens > 0 for *_, finish, tokens in rows)
    # the two samples of one prompt have different seeds, so they are different draws
    assert len({(name, pid, seed) for name, pid, _, seed, *_ in rows}) == 12

    # Same config into another results folder: the same seeds give the same answers.
    again = collect_run(load_config(write_config(tmp_path, tmp_path / "b")), progress=False)
    assert again.stored == 12
    assert [r[4] for r in stored(tmp_path / "b")] == [r[4] for r in rows]

    # A re-run of the first asks for nothing.
    rerun = collect_run(load_config(write_config(tmp_path, tmp_path / "a")), progress=False)
    assert rerun.requested == 0 and rerun.skipped == 12


def test_servers_listen_on_loopback_only(local_servers):
    for model in local_servers:
        assert model.api_base.startswith("http://127.0.0.1:")
        assert local_server.is_up(model)
