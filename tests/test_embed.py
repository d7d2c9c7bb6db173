"""The embed stage: the bundled sentence-transformers model, an embedding API through litellm (the fake
server on loopback), the per-text cache, and an embedder that cannot load offline."""
from __future__ import annotations

import numpy as np
import pytest

from fake_openai import FakeOpenAI, embedding_vector
from hivemind import HivemindError
from hivemind.core.config import Embedder, RunConfig, System
from hivemind.embed.stage import embed_run
from hivemind.store import Prompt, Response, Store

TEXTS = ["Time is a river.", "Time is a thief.", "Time is a river.", "A clock that never stops."]


def make_run(tmp_path, embedder: Embedder) -> RunConfig:
    """Two systems that share some answers verbatim: shared texts must be embedded once."""
    systems = [System(name="a", model="imported/a"), System(name="b", model="imported/b")]
    config = RunConfig(name="emb", prompts="unused.jsonl", samples=2, systems=systems, embedder=embedder,
                       results_dir=str(tmp_path / "results"))
    with Store(config.store_path) as store:
        store.add_prompts([Prompt("p1", "Write a metaphor about time.")])
        for system in systems:
            store.add_system(system.identity, system.name, system.model, None, {})
        a, b = (s.identity for s in systems)
        store.add_responses([Response(a, "p1", 0, TEXTS[0]), Response(a, "p1", 1, TEXTS[1]),
                             Response(b, "p1", 0, TEXTS[2]), Response(b, "p1", 1, TEXTS[3])])
    return config


def stored_vectors(config: RunConfig) -> dict[str, np.ndarray]:
    with Store(config.store_path, create=False) as store:
        rows = store.db.execute("SELECT text_hash, vector FROM embeddings WHERE embedder = ?",
                                (config.embedder.id,)).fetchall()
    return {h: np.frombuffer(v, dtype=np.float32) for h, v in rows}


def test_bundled_model_embeds_each_distinct_text_once(tmp_path):
    config = make_run(tmp_path, Embedder())
    first = embed_run(config, progress=False)
    assert first.embedded == 4                       # 4 answers, 3 distinct texts, and the prompt's text
    vectors = stored_vectors(config)
    assert len(vectors) == 4
    for vector in vectors.values():
        assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1) < 1e-5
    assert embed_run(config, progress=False).embedded == 0   # a re-run embeds nothing


def test_embedding_api_through_litellm(tmp_path, monkeypatch):
    monkeypatch.setenv("HIVEMIND_EMBED_KEY", "sk-embed-test")
    with FakeOpenAI(embedding_dim=16, expected_api_key="sk-embed-test") as server:
        embedder = Embedder(provider="litellm", model="openai/fake-embedding", api_base=server.url,
                            api_key_env="HIVEMIND_EMBED_KEY")
        config = make_run(tmp_path, embedder)
        assert embed_run(config, progress=False).embedded == 4      # 3 distinct answers + the prompt
        requests = server.embedding_requests
        assert requests >= 1 and server.auth_ok >= 1 and server.auth_bad == 0
        # the API's vectors, normalised, each under its own text's hash
        from hivemind.store import text_hash
        vectors = stored_vectors(config)
        for text in set(TEXTS):
            expected = np.array(embedding_vector(text, 16), dtype=np.float32)
            assert np.allclose(vectors[text_hash(text)], expected / np.linalg.norm(expected), atol=1e-6)
        assert embed_run(config, progress=False).embedded == 0
        assert server.embedding_requests == requests     # cached: no new request


def test_embedding_api_failure_keeps_what_is_stored(tmp_path):
    with FakeOpenAI(fail_status=401) as server:
        embedder = Embedder(provider="litellm", model="openai/fake-embedding", api_base=server.url)
        config = make_run(tmp_path, embedder)
        with pytest.raises(HivemindError, match="fake-embedding"):
            embed_run(config, progress=False)
    with Store(config.store_path, create=False) as store:
        assert store.count_responses() == 4


def test_embedder_that_cannot_load_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = make_run(tmp_path, Embedder(model="sentence-transformers/no-such-model-anywhere"))
    with pytest.raises(HivemindError, match=r"no-such-model-anywhere.*could not be loaded.*HF_HUB_OFFLINE"):
        embed_run(config, progress=False)
    with Store(config.store_path, create=False) as store:
        assert store.count_responses() == 4 and store.count_embeddings(config.embedder.id) == 0


def test_run_without_responses_says_what_to_do(tmp_path):
    config = RunConfig(name="empty", prompts="unused.jsonl", systems=[System(name="a", model="imported/a")],
                       results_dir=str(tmp_path / "results"))
    Store(config.store_path).close()
    with pytest.raises(HivemindError, match="hivemind collect"):
        embed_run(config, progress=False)
