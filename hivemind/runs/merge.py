"""Merge stores collected on several machines into a run's store: `hivemind merge RUN STORE...`.

Collection shards by system: each machine runs `hivemind collect CONFIG --system A` into its own results
folder (its own store.sqlite). `merge` then copies what the run's store lacks from each given store, under
the run lock with signals handled (SIGTERM stops it with the target as it was), in one transaction. Every
table and column of the store's declaration is merged (hivemind/store/schema.py, rules in
hivemind/store/merge.py):
- systems with the same identity (hash of model, endpoint and parameters) are one system;
- a sample, a score or a prompt label present in two stores with different content is a conflict: refused
  with a message naming the key and the file, and nothing is written;
- a permanent error (a failed request, an unreadable judge or classifier reply) in one store is replaced by
  a real answer, score or label for the same key from another;
- the given stores are only read: a foreign SQLite file, a newer or a damaged store is refused naming it;
- merging the same store twice adds nothing.
"""
from __future__ import annotations

from pathlib import Path

from hivemind.core.config import RunConfig
from hivemind.core.errors import HivemindError
from hivemind.store import MergeCounts, Store
from hivemind.store.merge import check_sources


def merge(config: RunConfig, stores: list[str | Path], wait: bool = False) -> MergeCounts:
    """Merge the given store files (or run folders holding a store.sqlite) into the run's store.

    Systems of the sources that the run's config does not list are merged too, and named in
    `counts.warnings` (the analysis only reads the config's systems)."""
    from hivemind.pipeline import locked  # here, not at the top: the pipeline imports every stage

    paths = [_store_file(Path(p), config.store_path.name) for p in stores]
    target = config.store_path.resolve()
    paths = [p for p in paths if p.resolve() != target]        # merging a store into itself: nothing to do
    check_sources(paths)                                       # a bad source is refused before the run is touched
    with locked(config, "merge", wait), Store(config.store_path) as store:
        counts = store.merge_stores(paths)   # one transaction; a SQLite error is a HivemindError naming the file
    known = {s.identity for s in config.systems}
    others = sorted(name for sid, name in counts.source_systems.items() if sid not in known)
    if others:
        counts.warnings.append(f"merged systems that {config.name!r}'s config does not list, so the analysis "
                               f"leaves them out until it does: {', '.join(others)}")
    return counts


def _store_file(path: Path, name: str) -> Path:
    if path.is_dir():
        path = path / name
    if not path.is_file():
        raise HivemindError(f"{path}: no store here; give a store.sqlite file or a run folder that holds one")
    with open(path, "rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise HivemindError(f"{path}: not an SQLite store; nothing merged")
    return path
