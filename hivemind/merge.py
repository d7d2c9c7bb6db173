"""Merge stores collected on several machines into a run's store: `hivemind merge RUN STORE...`.

Collection shards by system: each machine runs `hivemind collect CONFIG --system A` into its own results
folder (its own store.sqlite). `merge` then copies every row the run's store lacks from each given store,
under the run lock, in one transaction:
- systems with the same identity (hash of model, endpoint and parameters) are one system;
- a sample present in two stores with different text is a conflict: refused with a message naming the key,
  and nothing is written (a sample is collected on one machine only; two different texts for one key mean
  two machines collected the same system, and neither can be preferred);
- a permanent error in one store is replaced by an answer for the same key from another;
- embeddings (per embedder id and text hash), chunk counts and scores are merged the same way;
- merging the same store twice adds nothing.
"""
from __future__ import annotations

from pathlib import Path

from hivemind import HivemindError
from hivemind.config import RunConfig
from hivemind.lock import RunLock
from hivemind.store import MergeCounts, Store


def merge(config: RunConfig, stores: list[str | Path], wait: bool = False) -> MergeCounts:
    """Merge the given store files (or run folders holding a store.sqlite) into the run's store."""
    paths = [_store_file(Path(p), config.store_path.name) for p in stores]
    target = config.store_path.resolve()
    paths = [p for p in paths if p.resolve() != target]        # merging a store into itself: nothing to do
    config.run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(config.run_dir, "merge", wait=wait, run_name=config.name), Store(config.store_path) as store:
        for path in paths:
            Store(path, create=False).close()                  # its schema is current and it is readable
        return store.merge_stores(paths)   # one transaction; a SQLite error is a HivemindError from the store


def _store_file(path: Path, name: str) -> Path:
    if path.is_dir():
        path = path / name
    if not path.is_file():
        raise HivemindError(f"{path}: no store here; give a store.sqlite file or a run folder that holds one")
    with open(path, "rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise HivemindError(f"{path}: not an SQLite store; nothing merged")
    return path
