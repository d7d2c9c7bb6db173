"""API embeddings at scale on the fake OpenAI server: many inputs per request, retried, resumable."""
from __future__ import annotations

import pytest

from fake_openai import FakeOpenAI
from hivemind import HivemindError
from hivemind.core.config import Embedder, RunConfig, System
from hivemind.embed.stage import API_BATCH, API_CONCURRENCY, embed_run
from hivemind.store import Prompt, Response, Store


def make_run(tmp_path, url: str, answers: int) -> RunConfig:
    embedder = Embedder(provider="litellm", model="openai/fake-embedding", api_base=url)
    config = RunConfig(name="api", prompts="x", systems=[System(name="a", model="imported/a")],
                       embedder=embedder, results_dir=str(tmp_path), samples=answers)
    config.run_dir.mkdir(parents=True)
    with Store(config.store_path) as store:
        store.add_prompts([Prompt("p0", "a prompt")])
        store.add_responses(Response(config.systems[0].identity, "p0", i, f"answer {i}") for i in range(answers))
    return config


def test_many_texts_per_request_with_429s_retried(tmp_path):
    texts = 3 * API_BATCH + 10 + 1                      # answers + the prompt
    with FakeOpenAI(embedding_dim=8, rate_429=0.2, seed=3) as server:
        config = make_run(tmp_path, server.url, texts - 1)
        summary = embed_run(config, progress=False)
        assert summary.embedded == texts
        faults = server.faults["429"]
        assert server.embedding_requests == -(-texts // API_BATCH) + faults   # 4 batches + one retry per 429
        assert summary.cost == 0.0                                             # the fake model has no price
    with Store(config.store_path, create=False) as store:
        assert store.count_embeddings(config.embedder.id) == texts


def test_a_rerun_sends_nothing_and_a_dead_provider_is_a_clear_error(tmp_path):
    round_size = API_BATCH * API_CONCURRENCY
    with FakeOpenAI(embedding_dim=8) as server:
        config = make_run(tmp_path, server.url, round_size + 50)
        first = embed_run(config, progress=False)
        assert first.embedded == round_size + 51
        before = server.embedding_requests
        assert embed_run(config, progress=False).embedded == 0
        assert server.embedding_requests == before          # resumed: nothing embedded twice
    with FakeOpenAI(fail_status=401) as dead:
        config2 = make_run(tmp_path / "b", dead.url, 10)
        with pytest.raises(HivemindError, match="vectors embedded so far are kept"):
            embed_run(config2, progress=False)
