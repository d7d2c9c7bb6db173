"""Merge stores into one, derived from the declaration in schema.py: every table and column is merged.

Each source is attached read-only (`file:...?mode=ro`, or `immutable=1` in a read-only folder) and checked
before anything is written: a foreign SQLite file, a newer store or a damaged one is refused naming that
file, which is left byte-identical. An older source is read through the declaration (a missing table is
empty, a missing column NULL) without being upgraded. Then, in one transaction, for every table of every
source, by the table's MergeRule:
- a key the target lacks: the row is copied (an order column is renumbered after the target's);
- a key both have, with the same content, or where the source's row is a failure: nothing;
- a failure in the target (a failed request, an unreadable judge reply) and a real row in the source: the
  real row replaces it;
- two real rows that differ in a conflict column: HivemindError naming the key and the source file, and
  nothing of any source is written.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from hivemind.core.errors import HivemindError
from hivemind.store import schema
from hivemind.store.errors import RESTORE, read_only_reason, store_error

MAX_SOURCES = 9                 # SQLite attaches at most 10 databases, the target being one
KEY_LABELS = {"system_id": "system", "prompt_id": "prompt", "sample": "sample", "scorer": "scorer",
              "classifier": "classifier", "embedder": "embedder", "text_hash": "text", "id": "id"}


@dataclass
class MergeCounts:
    """What a merge did to the target store, per table of the declaration."""
    added: dict[str, int] = field(default_factory=dict)         # rows added
    replaced: dict[str, int] = field(default_factory=dict)      # failures replaced by real rows
    source_systems: dict[str, str] = field(default_factory=dict)  # id -> name of every system in the sources
    warnings: list[str] = field(default_factory=list)           # lines for the user (hivemind/runs/merge.py)

    def __getattr__(self, name: str) -> int:
        """counts.scores and the like: rows added to that table."""
        if name in schema.TABLE:
            return self.added.get(name, 0)
        raise AttributeError(name)


@dataclass
class Source:
    path: Path
    alias: str                  # its schema name while attached: src0, src1, ...
    litter: list[Path] = field(default_factory=list)              # -wal, -shm files that attaching created
    columns: dict[str, list[str]] = field(default_factory=dict)   # table -> columns it has ([] = no table)

    def rows(self, table: schema.Table) -> str:
        """SQL for the source's rows of `table` with the declared columns (NULL for those it lacks)."""
        return f"(SELECT {schema.select_list(table, self.columns[table.name])} FROM {self.alias}.{table.name})"


def check_sources(paths: list[Path]) -> None:
    """Refuse, naming it, a source that is foreign, newer or damaged, before anything else is opened: a merge
    into a new run then leaves no empty store behind. Reads only (attached to an in-memory database)."""
    _check_count(paths)
    db = sqlite3.connect(":memory:", uri=True, isolation_level=None)
    try:
        for i, path in enumerate(paths):
            source = Source(Path(path), f"src{i}")
            _attach(db, source)
            try:
                _inspect(db, source)
            finally:
                db.execute(f"DETACH DATABASE {source.alias}")
                _sweep(source)
    finally:
        db.close()


def merge_stores(store, paths: list[Path]) -> MergeCounts:
    """Merge the stores at `paths` into `store` (open for writing), in one transaction."""
    _check_count(paths)
    db = store.db
    sources = [Source(Path(path), f"src{i}") for i, path in enumerate(paths)]
    attached = []
    try:
        for source in sources:
            _attach(db, source)
            attached.append(source)
            _inspect(db, source)
        counts = MergeCounts(source_systems=_systems(db, sources))
        before = _row_counts(db)
        with store.transaction():
            for source in sources:
                for table in schema.TABLES:
                    replaced = _merge_table(db, table, source, store.path)
                    counts.replaced[table.name] = counts.replaced.get(table.name, 0) + replaced
        after = _row_counts(db)
        counts.added = {name: after[name] - before[name] for name in after}
        return counts
    finally:
        for source in attached:
            try:
                db.execute(f"DETACH DATABASE {source.alias}")
            except sqlite3.Error:
                pass        # the connection is closed next; the error on its way says what went wrong
            _sweep(source)


def _check_count(paths: list[Path]) -> None:
    if len(paths) > MAX_SOURCES:
        raise HivemindError(f"merge at most {MAX_SOURCES} stores at a time (SQLite attaches 10 databases); "
                            "merge in rounds")


def _attach(db: sqlite3.Connection, source: Source) -> None:
    """Attach the source read-only. In a read-only folder SQLite cannot create the -shm file that WAL readers
    share, so the file is attached as immutable there, which is exact because nobody can write it."""
    uri = source.path.resolve().as_uri()
    shm = source.path.parent / f"{source.path.name}-shm"
    wal = source.path.parent / f"{source.path.name}-wal"
    if read_only_reason(shm) and not shm.exists():
        if wal.is_file() and wal.stat().st_size > 0:
            raise HivemindError(f"{source.path}: its write-ahead log {wal} holds rows not yet in the store file, "
                                f"and the folder is read-only ({read_only_reason(shm)}), so they cannot be "
                                "read; copy the run folder somewhere writable and merge from there")
        uri += "?immutable=1"
    else:
        uri += "?mode=ro"
        source.litter = [f for f in (wal, shm) if not f.exists()]
    try:
        db.execute(f"ATTACH DATABASE ? AS {source.alias}", (uri,))
    except sqlite3.Error as err:
        raise _source_error(err, source) from None


def _sweep(source: Source) -> None:
    """Remove the -wal and -shm files a `mode=ro` attachment of a WAL store leaves behind (it may not delete
    them). A plain connection that reads nothing does it on close, as SQLite does after its last reader; the
    WAL is empty, so the store file itself is not written."""
    if not any(f.exists() for f in source.litter):
        return
    try:
        db = sqlite3.connect(source.path, isolation_level=None)
        try:
            db.execute("PRAGMA query_only = ON")
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        pass        # leftovers are harmless; the merge's own outcome is what counts


def _inspect(db: sqlite3.Connection, source: Source) -> None:
    """Check the source is a hivemind store this code knows, whole, and note which columns it has."""
    try:
        schema.check_file(db, source.path, source.alias)
        problems = [row[0] for row in db.execute(f"PRAGMA {source.alias}.quick_check(3)")]
        if problems != ["ok"]:
            raise HivemindError(f"{source.path}: damaged store ({'; '.join(problems)}); nothing merged, the "
                                f"target is as it was. Merge another copy of it, or {RESTORE}")
        source.columns = {t.name: schema.existing_columns(db, source.alias, t.name) for t in schema.TABLES}
    except sqlite3.Error as err:
        raise _source_error(err, source) from None


def _source_error(err: sqlite3.Error, source: Source) -> HivemindError:
    converted = store_error(err, source.path)
    if converted is None:
        return HivemindError(f"{source.path}: cannot read this store ({err}); nothing merged")
    return HivemindError(f"{converted} (a store to merge; nothing merged, the target is as it was)")


def _systems(db: sqlite3.Connection, sources: list[Source]) -> dict[str, str]:
    found = {}
    for source in sources:
        found.update(db.execute(f"SELECT id, name FROM {source.alias}.systems"))
    return found


def _row_counts(db: sqlite3.Connection) -> dict[str, int]:
    return {t.name: db.execute(f"SELECT COUNT(*) FROM main.{t.name}").fetchone()[0] for t in schema.TABLES}


def _merge_table(db: sqlite3.Connection, table: schema.Table, source: Source, target: Path) -> int:
    """Merge one table of one source into the target by its rule; returns how many failures were replaced."""
    if not source.columns[table.name]:
        return 0                                        # an older store without this table: nothing to add
    rule, rows = table.merge, source.rows(table)
    same_key = " AND ".join(f"o.{k} = s.{k}" for k in table.key)
    real_s, real_o = (f"s.{rule.real} IS NOT NULL", f"o.{rule.real} IS NOT NULL") if rule.real else ("1", "1")
    if rule.conflict:
        differs = " OR ".join(f"s.{c} IS NOT o.{c}" for c in rule.conflict)
        row = db.execute(f"SELECT {', '.join('s.' + k for k in table.key)} FROM {rows} s "
                         f"JOIN main.{table.name} o ON {same_key} "
                         f"WHERE {real_s} AND {real_o} AND ({differs}) LIMIT 1").fetchone()
        if row:
            key = ", ".join(_key_part(name, value) for name, value in zip(table.key, row))
            raise HivemindError(f"{source.path}: {rule.what} ({key}) has another {' and '.join(rule.conflict)} "
                                f"than in {target}; nothing merged ({rule.hint})")
    replaced = 0
    if rule.real:
        replaced = db.execute(
            f"DELETE FROM main.{table.name} AS o WHERE NOT ({real_o}) AND EXISTS "
            f"(SELECT 1 FROM {rows} s WHERE {same_key} AND {real_s})").rowcount
    columns = table.column_names
    chosen = [f"? + s.{c}" if c == rule.renumber else f"s.{c}" for c in columns]
    start = []
    if rule.renumber:
        start = [db.execute(f"SELECT COALESCE(MAX({rule.renumber}) + 1, 0) FROM main.{table.name}").fetchone()[0]]
    order = f" ORDER BY s.{rule.renumber}" if rule.renumber else ""
    db.execute(f"INSERT OR IGNORE INTO main.{table.name} ({', '.join(columns)}) "
               f"SELECT {', '.join(chosen)} FROM {rows} s{order}", start)
    return replaced


def _key_part(name: str, value) -> str:
    label = KEY_LABELS.get(name, name)
    return f"{label} {value!r}" if name in ("prompt_id", "id") else f"{label} {value}"
