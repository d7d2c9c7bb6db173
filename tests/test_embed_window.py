"""No silent truncation: long answers are embedded in windows and pooled, short ones exactly as before; the
coverage table counts what needed chunking; prompts are embedded too; the second (static) embedder loads
offline. Real answers from ../shared/data/alpaca_eval_outputs where the test needs long real text."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fake_openai import FakeOpenAI, embedding_vector
from hivemind.core.config import DEFAULT_EMBEDDER, Embedder, RunConfig, System
from hivemind.embed.stage import (COVERAGE_FILE, STATIC_EMBEDDER, char_windows, embed_run, load_encoder,
                            load_sentence_transformer, token_windows)
from hivemind.store import Prompt, Response, Store, text_hash

ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"
needs_alpaca = pytest.mark.skipif(not ALPACA.is_dir(), reason=f"{ALPACA} not present (CI clones beside shared/)")


def alpaca_answers(n: int) -> list[str]:
    return [r["output"] for r in json.loads((ALPACA / "gpt-4o-2024-05-13.json").read_text())[:n]]


@pytest.fixture(scope="module")
def minilm():
    return load_sentence_transformer(DEFAULT_EMBEDDER)


def long_real_text(model, min_tokens: int = 700) -> str:
    """Several real AlpacaEval answers joined, well past MiniLM's 256 word pieces."""
    text = ""
    for answer in alpaca_answers(40):
        text = f"{text}\n\n{answer}" if text else answer
        if len(model.tokenizer(text, add_special_tokens=False)["input_ids"]) > min_tokens:
            return text
    pytest.skip("AlpacaEval answers too short to build a long text")


def make_run(tmp_path, texts: list[str], embedder: Embedder | None = None) -> RunConfig:
    """One system answering one prompt per text."""
    system = System(name="a", model="imported/a")
    config = RunConfig(name="win", prompts="unused.jsonl", samples=1, systems=[system],
                       embedder=embedder or Embedder(), results_dir=str(tmp_path / "results"))
    with Store(config.store_path) as store:
        store.add_prompts(Prompt(f"p{i}", f"Question number {i}?") for i in range(len(texts)))
        store.add_system(system.identity, system.name, system.model, None, {})
        store.add_responses(Response(system.identity, f"p{i}", 0, t) for i, t in enumerate(texts))
    return config


@needs_alpaca
def test_long_answer_is_pooled_from_windows_not_cut(tmp_path, minilm):
    long = long_real_text(minilm)
    encoder = load_encoder(Embedder())
    result = encoder.encode([long])
    tokens = len(minilm.tokenizer(long, add_special_tokens=False)["input_ids"])
    assert result.chunks[0] >= 3 and result.tokens[0] == tokens
    # what the model alone gives: the first 256 word pieces (254 + [CLS] + [SEP]) and nothing after
    truncated = minilm.encode([long], normalize_embeddings=True)[0]
    first = minilm.tokenizer.decode(minilm.tokenizer(long, add_special_tokens=False)["input_ids"][:254])
    assert float(truncated @ minilm.encode([first], normalize_embeddings=True)[0]) > 0.99
    assert float(result.vectors[0] @ truncated) < 0.999            # the rest of the answer counts now
    assert abs(np.linalg.norm(result.vectors[0]) - 1) < 1e-5
    # the pooled vector is the token-weighted mean of the windows' own vectors
    pieces = token_windows(long, minilm.tokenizer(long, add_special_tokens=False,
                                                  return_offsets_mapping=True)["offset_mapping"], 254, 32)
    own = minilm.encode([p for p, _ in pieces.parts], normalize_embeddings=True)
    pooled = np.array([n for _, n in pieces.parts], float) @ own
    assert np.allclose(result.vectors[0], pooled / np.linalg.norm(pooled), atol=1e-5)


@needs_alpaca
def test_text_that_fits_gets_exactly_the_old_vector(minilm):
    short = [a for a in alpaca_answers(30)
             if len(minilm.tokenizer(a, add_special_tokens=False)["input_ids"]) < 200][:5]
    assert short
    result = load_encoder(Embedder()).encode(short)
    assert (result.chunks == 1).all()
    bare = minilm.encode(short, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    assert np.abs(result.vectors - bare).max() < 1e-6


def test_windows_cover_the_text_in_order():
    text = " ".join(f"w{i}" for i in range(100))
    offsets = [(m, m + len(w)) for w, m in zip(text.split(), np.cumsum([0] + [len(w) + 1 for w in text.split()])[:-1])]
    pieces = token_windows(text, offsets, window=30, overlap=5)
    assert pieces.tokens == 100 and all(n <= 30 for _, n in pieces.parts)
    assert pieces.parts[0][0].startswith("w0 ") and pieces.parts[-1][0].endswith("w99")
    assert pieces.parts[1][0].startswith("w25 ")                   # 30 - 5 overlap
    assert token_windows("short text", offsets[:2], 30, 5).parts == [("short text", 2)]
    parts = char_windows("aaa bbb ccc ddd eee", 8)
    assert "".join(p for p, _ in parts) == "aaa bbb ccc ddd eee" and all(len(p) <= 8 for p, _ in parts)


@needs_alpaca
def test_embed_stage_counts_chunked_answers_and_embeds_prompts(tmp_path, minilm):
    long = long_real_text(minilm)
    short = next(a for a in alpaca_answers(40) if len(minilm.tokenizer(a)["input_ids"]) < 200)
    config = make_run(tmp_path, [long, short, "Fine."])
    summary = embed_run(config, progress=False)
    assert summary.embedded == 6 and summary.chunked == 1          # 3 answers + 3 prompt texts
    coverage = pd.read_csv(config.run_dir / COVERAGE_FILE)
    row = coverage[coverage["embedder"] == config.embedder.id].iloc[0]
    assert (row["answers"], row["chunked"], row["max_chunks"]) == (3, 1, summary_chunks(config, long))
    assert row["share_chunked"] == pytest.approx(1 / 3)
    with Store(config.store_path, create=False) as store:
        prompts = store.prompt_vectors(config.embedder.id)
        assert set(prompts) == {"p0", "p1", "p2"}
        direct = minilm.encode(["Question number 1?"], normalize_embeddings=True)[0]
        assert np.abs(prompts["p1"] - direct).max() < 1e-6
    assert embed_run(config, progress=False).embedded == 0         # all cached, chunk counts too


def summary_chunks(config: RunConfig, text: str) -> int:
    with Store(config.store_path, create=False) as store:
        return store.chunk_counts(config.embedder.id)[text_hash(text)]


@needs_alpaca
def test_vectors_stored_before_chunk_counts_are_embedded_again(tmp_path, minilm):
    long = long_real_text(minilm)
    config = make_run(tmp_path, [long])
    truncated = minilm.encode([long], normalize_embeddings=True)
    with Store(config.store_path) as store:                         # an old store: a cut vector, no count
        store.add_embeddings(config.embedder.id, [text_hash(long)], truncated)
    assert embed_run(config, progress=False).embedded == 2          # the answer again, and its prompt
    with Store(config.store_path, create=False) as store:
        group = next(store.iter_prompt_groups(config.embedder.id, [config.systems[0].identity]))
    assert float(group.vectors[0] @ truncated[0]) < 0.999


def test_static_embedder_loads_offline_by_short_name(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = RunConfig.model_validate({"name": "s", "prompts": "x.jsonl", "systems": [{"name": "a", "model": "m"}],
                                       "embedder": STATIC_EMBEDDER})
    assert config.embedder.model == STATIC_EMBEDDER
    encode = load_encoder(config.embedder)
    v = encode(["The cat sat on the mat.", "A kitten rested on the rug.", "Quarterly bond yields fell."])
    assert v.shape == (3, 64) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]                                # it reads meaning, not noise
    minilm = load_encoder(Embedder())(["The cat sat on the mat."])
    assert minilm.shape[1] != v.shape[1]


def test_static_embedder_chunks_past_its_window(tmp_path):
    text = " ".join(["The river runs to the sea and the sea runs to the sky."] * 120)   # ~1,700 tokens
    result = load_encoder(Embedder(model=STATIC_EMBEDDER)).encode([text])
    assert result.chunks[0] >= 3 and result.vectors.shape == (1, 64)


def test_api_embedder_chunks_by_a_character_estimate(tmp_path, monkeypatch):
    monkeypatch.setenv("HIVEMIND_EMBED_KEY", "sk-embed-test")
    long = " ".join(f"word{i}" for i in range(60))                  # 60 words, 8 characters each with space
    with FakeOpenAI(embedding_dim=16, expected_api_key="sk-embed-test") as server:
        embedder = Embedder(provider="litellm", model="openai/fake-embedding", api_base=server.url,
                            api_key_env="HIVEMIND_EMBED_KEY", window=40)   # 40 tokens ~ 120 characters
        result = load_encoder(embedder).encode([long, "short"])
    parts = char_windows(long, 120)
    assert list(result.chunks) == [len(parts), 1] and len(parts) >= 4
    chunk_vectors = np.array([embedding_vector(p, 16) for p, _ in parts])
    pooled = np.array([n for _, n in parts], float) @ chunk_vectors
    assert np.allclose(result.vectors[0], pooled / np.linalg.norm(pooled), atol=1e-6)
    assert np.allclose(result.vectors[1], embedding_vector("short", 16), atol=1e-6)
