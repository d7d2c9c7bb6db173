"""Embedding on Ray: Parquet shards in, an actor pool of embedders, Parquet shards out, imported by the driver.

    store --export--> work/input/shard-*.parquet --Ray Data from_arrow--> map_batches(EmbedActor pool)
          <--import-- work/output/part-*.parquet <--driver writes each finished batch (atomic rename)--

- What to embed is decided by the store, as in the local engine (Store.texts_without_chunk_counts: every
  distinct answer and prompt text with no vector and chunk count yet for this embedder), so a text is
  embedded once whichever engine ran before, and a re-run embeds nothing.
- Each actor holds one encoder from hivemind.embed.stage.load_encoder and calls its `encode`, the local
  engine's code: long texts are cut into windows and pooled exactly as there (embedding_chunks).
  On a cluster with GPUs the actors take one GPU each (device cuda, a larger batch per device).
- Each batch the pool finishes is written by the driver as an output shard (text_hash, vector, chunks,
  tokens: the snapshot's embeddings.parquet schema) under a temporary name and renamed into place, then
  imported in one transaction and deleted. A job killed at any point leaves at most renamed, unimported
  shards: the next run imports them first (texts the store has meanwhile are skipped), then embeds only
  what is still missing. A shard that cannot be read is refused by name and nothing is imported from it.
- A worker process that dies mid-batch is restarted by Ray and its batch retried (Ray Data's actor pools
  restart actors and retry their tasks by default).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hivemind.core.config import Embedder, RunConfig
from hivemind.core.errors import HivemindError
from hivemind.embed.stage import EmbedSummary
from hivemind.engines.ray.cluster import connected, gpu_workers, n_cpus
from hivemind.engines.ray.pool import (  # noqa: F401
    FAULT_ENV,
    SHARDS_PER_WORKER,
    die_once,
    drain,
    map_actors,
    output_path,  # (FAULT_ENV, die_once: tests name them here)
    remove_empty,
)
from hivemind.results.folder import atomic_file
from hivemind.store import Store
from hivemind.store.run import Run

WORK_FOLDER = ".ray-embed"
SHARD_TEXTS = 1024           # texts per input shard, at most
CPU_BATCH = 256              # texts per actor call on a CPU worker
GPU_BATCH = 2048             # and on a GPU worker, which also encodes in larger batches:
GPU_ENCODE_BATCH = 256
SCHEMA_COLUMNS = ["text_hash", "vector", "chunks", "tokens"]


def work_dir(config: RunConfig) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", config.embedder.id)[:80]
    return config.run_dir / WORK_FOLDER / slug


@dataclass
class RayEmbedSummary(EmbedSummary):
    resumed: int = 0       # vectors imported from output shards a killed job left behind
    sent: int = 0          # texts sent to the workers in this run


# The actor --------------------------------------------------------------------------------------------------
class EmbedActor:
    """One encoder per worker process, loaded once; called on batches of {text_hash, text}."""

    def __init__(self, embedder: dict, device: str = "cpu", fault_file: str | None = None):
        from hivemind.embed.stage import load_encoder

        settings = Embedder(**embedder)
        if device != "cpu":
            settings = settings.model_copy(update={"device": device,
                                                   "batch_size": max(settings.batch_size, GPU_ENCODE_BATCH)})
        self.encoder = load_encoder(settings)
        self.fault_file = fault_file

    def __call__(self, batch: dict) -> dict:
        die_once(self.fault_file)
        result = self.encoder.encode([str(t) for t in batch["text"]])
        return {"text_hash": np.asarray(batch["text_hash"]), "vector": result.vectors,
                "chunks": result.chunks.astype(np.int32), "tokens": result.tokens.astype(np.int32)}


# Shards -----------------------------------------------------------------------------------------------------
def export_inputs(todo: list[tuple[str, str]], folder: Path, size: int = SHARD_TEXTS) -> list[Path]:
    """The texts to embed as Parquet shards of `size` texts (text_hash, text); old input shards removed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("shard-*.parquet"):
        old.unlink()
    paths = []
    for n, start in enumerate(range(0, len(todo), size)):
        part = todo[start:start + size]
        path = folder / f"shard-{n:06d}.parquet"
        with atomic_file(path) as tmp:
            pq.write_table(pa.table({"text_hash": [h for h, _ in part], "text": [t for _, t in part]}), tmp)
        paths.append(path)
    return paths


def write_output(batch: dict, folder: Path) -> Path:
    """One finished batch as an output shard, written under a temporary name and renamed into place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ascontiguousarray(batch["vector"], dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), type=pa.float32()), vectors.shape[1]) \
        if vectors.size else pa.array([], type=pa.list_(pa.float32()))
    table = pa.table({"text_hash": pa.array([str(h) for h in batch["text_hash"]], type=pa.string()),
                      "vector": column.cast(pa.list_(pa.float32())),
                      "chunks": pa.array(batch["chunks"], type=pa.int32()),
                      "tokens": pa.array(batch["tokens"], type=pa.int32())})
    path = output_path(folder)
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_output(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """An output shard's rows, checked: every column there, one vector length, finite, unit length."""
    import pyarrow.parquet as pq

    def bad(why: str) -> HivemindError:
        return HivemindError(f"{path}: not a usable embedding shard ({why}); nothing was imported from it. "
                             f"Delete it and run the embed stage again: its texts are still missing from the "
                             f"store and will be embedded anew")
    try:
        table = pq.read_table(path)
    except Exception as err:        # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        raise bad(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    missing = [c for c in SCHEMA_COLUMNS if c not in table.column_names]
    if missing:
        raise bad(f"no column {', '.join(missing)}")
    hashes = table.column("text_hash").to_pylist()
    rows = table.column("vector").to_pylist()
    if any(h is None for h in hashes) or any(r is None for r in rows):
        raise bad("empty text_hash or vector")
    if len({len(r) for r in rows}) > 1:
        raise bad("vectors of different lengths")
    vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
    if len(vectors) and (not np.all(np.isfinite(vectors)) or
                         np.max(np.abs(np.linalg.norm(vectors, axis=1) - 1.0)) > 1e-3):
        raise bad("vectors that are not finite unit vectors")
    chunks = np.asarray(table.column("chunks").to_pylist(), dtype=np.int64)
    tokens = np.asarray(table.column("tokens").to_pylist(), dtype=np.int64)
    return hashes, vectors, chunks, tokens


def import_output(store: Store, embedder_id: str, path: Path) -> tuple[int, int]:
    """Import one output shard (texts the store already has are skipped), then delete it. Returns how many
    vectors were new and how many of those needed chunking. The vectors and their chunk counts go in one
    transaction, so a kill leaves the shard either imported or still there to import."""
    hashes, vectors, chunks, tokens = read_output(path)
    have = store.hashes_with_chunk_counts(embedder_id, hashes)
    keep = [i for i, h in enumerate(hashes) if h not in have]
    if keep:
        store.add_chunked_embeddings(embedder_id, [hashes[i] for i in keep], vectors[keep], chunks[keep], tokens[keep])
    path.unlink()
    return len(keep), int((chunks[keep] > 1).sum())


def import_leftovers(store: Store, embedder_id: str, folder: Path) -> int:
    """Output shards a killed job wrote but did not import. Every shard is read and checked before any is
    imported, so a damaged one stops the run with nothing imported from it."""
    paths = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
    for path in paths:
        read_output(path)
    return sum(import_output(store, embedder_id, path)[0] for path in paths)


# The pool ---------------------------------------------------------------------------------------------------
def run_pool(ray, embedder: Embedder, inputs: list[Path], output: Path, workers: int, gpus: int,
             on_shard=None, progress: bool = False, total: int = 0) -> int:
    """Embed the input shards with `workers` actors (GPU actors when gpus > 0); each finished batch becomes
    an output shard, handed to `on_shard(path)` (the driver's import). Returns the texts embedded."""
    import pyarrow.parquet as pq

    on_gpu = gpus > 0
    size = gpus if on_gpu else workers
    # The driver reads the shards into the object store (one block per shard) rather than read tasks on
    # the workers: a read task waits for a free CPU, which actors holding every CPU never give back, and
    # workers of a remote cluster need not see the driver's files.
    ds = ray.data.from_arrow([pq.read_table(p, columns=["text_hash", "text"]) for p in inputs])
    kwargs = {"embedder": embedder.model_dump(), "device": "cuda" if on_gpu else "cpu",
              "fault_file": os.environ.get(FAULT_ENV)}
    ds = map_actors(ray, ds, EmbedActor, kwargs, GPU_BATCH if on_gpu else CPU_BATCH, size, on_gpu)

    def handle(batch: dict) -> int:
        path = write_output(batch, output)
        if on_shard:
            on_shard(path)
        return len(batch["text_hash"])

    return drain(ds, handle, total, f"embed {embedder.model} (ray, {size} {'GPU' if on_gpu else 'CPU'} workers)",
                 "text", progress, "embedding on Ray failed",
                 "every vector imported so far is kept, run again to embed the rest")


def embed_run(run: Run | RunConfig, progress: bool = True, address: str | None = None, num_cpus: int | None = None,
              workers: int | None = None, gpus: int | None = None, verbose: bool = False,
              shard_texts: int = SHARD_TEXTS):
    """hivemind.embed.stage.embed_run on Ray: the same texts, the same vectors, the same summary and coverage file."""
    from hivemind.embed.stage import COVERAGE_FILE, coverage_frame
    from hivemind.results.folder import write_text

    config = Run.config_of(run)
    if config.embedder.provider == "litellm":
        raise HivemindError(f"embedder {config.embedder.model!r} is an API: it runs on the local engine, which "
                            f"batches and retries its requests; leave out --engine ray")
    system_ids = [s.identity for s in config.systems]
    embedder_id = config.embedder.id
    folder = work_dir(config)
    with Run.of(run) as run:
        store = run.store()
        if store.count_responses(system_ids, with_text=True) == 0:
            raise HivemindError(f"run {config.name!r} has no stored responses to embed; "
                                f"run `hivemind collect` or `hivemind import` first")
        resumed = import_leftovers(store, embedder_id, folder / "output")
        todo = store.texts_without_chunk_counts(embedder_id, system_ids)
        cached = store.count_embeddings(embedder_id)
        embedded, chunked = 0, 0
        if todo:
            with connected(address, num_cpus, verbose) as ray:
                n_gpu = gpu_workers(ray, gpus)
                n_workers = workers or n_cpus(ray)
                # a shard is a block, and a block goes to one worker: at least SHARDS_PER_WORKER per worker
                per_shard = max(1, min(shard_texts, -(-len(todo) // (SHARDS_PER_WORKER * (n_gpu or n_workers)))))
                inputs = export_inputs(todo, folder / "input", per_shard)

                def imported(path: Path) -> None:
                    nonlocal embedded, chunked
                    new, long = import_output(store, embedder_id, path)
                    embedded, chunked = embedded + new, chunked + long
                run_pool(ray, config.embedder, inputs, folder / "output", n_workers, n_gpu, imported, progress,
                         total=len(todo))
            for path in inputs:
                path.unlink()
        write_text(config.run_dir / COVERAGE_FILE, coverage_frame(store, config).to_csv(index=False), config)
    remove_empty(folder / "input", folder / "output", folder, folder.parent)
    return RayEmbedSummary(embedded=embedded + resumed, cached=cached, chunked=chunked, resumed=resumed,
                           sent=len(todo))
