"""The one declaration of the store's tables, its schema version and the migrations between versions.

Everything that needs to know the tables reads them from TABLES: creating a store, upgrading an older one,
reading an older one without upgrading it, and merging stores (hivemind/store/merge.py). A table or column
added here is therefore created, upgraded and merged without another line elsewhere.

The version lives in the file itself (SQLite's `PRAGMA user_version`). Version 0 is a store written before
versions existed: the tables of version 1, except that `reasoning`, `prompt_labels` and `embedding_chunks`
(created lazily then) and `scores` (added later) may be missing. A store opened for writing is brought to
SCHEMA_VERSION by MIGRATIONS in one transaction; one opened read-only is never changed (see read_through).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hivemind.core.errors import HivemindError
from hivemind.store.errors import RESTORE, store_error

SCHEMA_VERSION = 2
# Tables every hivemind store has had from the first release: a SQLite file without them is not a store.
CORE_TABLES = ("systems", "prompts", "responses")


@dataclass(frozen=True)
class Column:
    name: str
    type: str           # SQL type and constraints, e.g. "TEXT NOT NULL"
    comment: str        # what the column holds


@dataclass(frozen=True)
class MergeRule:
    """How `hivemind merge` combines two rows with one key (rows with a key the target lacks are copied).

    A row whose `real` column is NULL is a stored failure (a request that failed for good, an unreadable
    judge reply); every row is real in a table without one. A real row replaces a failure; two real rows
    for one key must agree on the `conflict` columns, else the merge is refused naming the key."""
    conflict: tuple[str, ...] = ()
    real: str | None = None
    what: str = "row"               # what one row is, in a conflict message
    hint: str = ""                  # what to do about a conflict
    renumber: str | None = None     # an order column whose source values go after the target's (prompt order)


@dataclass(frozen=True)
class Table:
    name: str
    comment: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    merge: MergeRule = field(default_factory=MergeRule)
    indexes: tuple[tuple[str, str], ...] = ()       # (index name, indexed columns)
    since: int = 1                                  # the schema version that added the table

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def create_sql(self) -> list[str]:
        columns = [f"{c.name} {c.type}" for c in self.columns]
        statements = [f"CREATE TABLE IF NOT EXISTS {self.name} ({', '.join(columns)}, "
                      f"PRIMARY KEY ({', '.join(self.key)}))"]
        statements += [f"CREATE INDEX IF NOT EXISTS {name} ON {self.name} ({cols})" for name, cols in self.indexes]
        return statements


ANSWER_KEY = ("system_id", "prompt_id", "sample")
ANSWER_KEY_COLUMNS = (
    Column("system_id", "TEXT NOT NULL", "the system's identity: hash of model, api_base, params"),
    Column("prompt_id", "TEXT NOT NULL", "the prompt's id"),
    Column("sample", "INTEGER NOT NULL", "sample number of this system for this prompt, from 0"),
)
ONE_MACHINE = "collect and score each system on one machine only"

TABLES: tuple[Table, ...] = (
    Table("systems", "one row per system identity (config.System.identity)", (
        Column("id", "TEXT", "hash of model, api_base, params (config.System.identity)"),
        Column("name", "TEXT NOT NULL", "the system's name in the config that last stored it"),
        Column("model", "TEXT NOT NULL", "the model, as litellm names it"),
        Column("api_base", "TEXT", "the endpoint, NULL for the provider's default"),
        Column("params", "TEXT NOT NULL", "sampling parameters, canonical JSON"),
        Column("created_at", "TEXT NOT NULL", "when it was first stored (UTC, ISO 8601)"),
    ), key=("id",)),
    Table("prompts", "the run's prompts, in the order they were first stored", (
        Column("id", "TEXT", "the prompt's id"),
        Column("text", "TEXT NOT NULL", "the prompt's text"),
        Column("category", "TEXT", "its category from the prompt set, if any"),
        Column("position", "INTEGER NOT NULL", "its place in the run's prompt order"),
    ), key=("id",), merge=MergeRule(conflict=("text",), what="prompt", renumber="position",
                                    hint="these stores are not the same run")),
    Table("responses", "one row per (system, prompt, sample): an answer, or the error that ended its request", (
        *ANSWER_KEY_COLUMNS,
        Column("seed", "INTEGER", "the sampling seed sent, if any"),
        Column("text", "TEXT", "the answer; NULL when the request failed for good (see error)"),
        Column("text_hash", "TEXT", "sha256 of text, the key of its embedding"),
        Column("finish_reason", "TEXT", "why generation stopped (stop, length, ...)"),
        Column("prompt_tokens", "INTEGER", "tokens of the request, as the provider counted them"),
        Column("completion_tokens", "INTEGER", "tokens of the answer, as the provider counted them"),
        Column("latency_s", "REAL", "seconds the request took"),
        Column("cost", "REAL", "USD the request cost, so max_cost holds across runs"),
        Column("error", "TEXT", "why there is no answer"),
        Column("created_at", "TEXT NOT NULL", "when it was stored (UTC, ISO 8601)"),
    ), key=ANSWER_KEY, merge=MergeRule(conflict=("text",), real="text", what="sample",
                                       hint=ONE_MACHINE)),
    Table("embeddings", "one vector per (embedder, text): a text several systems produced is embedded once", (
        Column("embedder", "TEXT NOT NULL", "the embedder's id"),
        Column("text_hash", "TEXT NOT NULL", "sha256 of the embedded text (an answer's or a prompt's)"),
        Column("vector", "BLOB NOT NULL", "float32, L2-normalised"),
    ), key=("embedder", "text_hash")),   # two machines' vectors of one text may differ in the last bits: either is right
    Table("embedding_chunks", "how many windows each embedded text needed (a long text is embedded in chunks)", (
        Column("embedder", "TEXT NOT NULL", "the embedder's id"),
        Column("text_hash", "TEXT NOT NULL", "sha256 of the embedded text"),
        Column("chunks", "INTEGER NOT NULL", "windows the text needed; 1 = it fitted whole"),
        Column("tokens", "INTEGER NOT NULL", "its length in the embedder's tokens (estimated for APIs)"),
    ), key=("embedder", "text_hash"),
        # chunk_counts_by_system joins on text_hash alone: without this index it is quadratic in the answers
        # (47 s of the 69 s it took to embed 10,000 API texts).
        indexes=(("embedding_chunks_by_text", "text_hash"),)),
    Table("scores", "one quality score per (answer, scorer); higher is better for every scorer", (
        *ANSWER_KEY_COLUMNS,
        Column("scorer", "TEXT NOT NULL", "the scorer's name in the config (config.Scorer.name)"),
        Column("score", "REAL", "the score; NULL when none could be read (see error)"),
        Column("raw", "TEXT", "what the scorer said (a judge's reply), for audit"),
        Column("error", "TEXT", "why there is no score (unparseable reply, refused, ...)"),
        Column("cost", "REAL", "USD the scorer's request cost (LM judges), so max_cost holds across runs"),
        Column("created_at", "TEXT NOT NULL", "when it was stored (UTC, ISO 8601)"),
    ), key=(*ANSWER_KEY, "scorer"), merge=MergeRule(conflict=("score",), real="score",
                                                    what="score", hint=ONE_MACHINE)),
    Table("reasoning", "a reasoning model's thinking, kept apart from the answer that gets embedded", (
        *ANSWER_KEY_COLUMNS,
        Column("text", "TEXT NOT NULL", "the reasoning text"),
    ), key=ANSWER_KEY, merge=MergeRule(conflict=("text",), what="reasoning", hint=ONE_MACHINE)),
    Table("prompt_labels", "prompt categories assigned by an LM classifier (hivemind classify)", (
        Column("prompt_id", "TEXT NOT NULL", "the prompt's id"),
        Column("classifier", "TEXT NOT NULL", "the classifier's id"),
        Column("label", "TEXT", "the category; NULL when none could be read (see error)"),
        Column("raw", "TEXT", "the classifier's reply, for audit"),
        Column("error", "TEXT", "why there is no label"),
    ), key=("prompt_id", "classifier"), merge=MergeRule(conflict=("label",), real="label",
                                                        what="prompt label",
                                                        hint="classify each prompt on one machine only")),
    Table("equivalence_verdicts", "whether two answers of one (system, prompt) say the same thing, as decided by "
          "an equivalence method that is asked pair by pair (an LM judge, a classifier) or imported", (
        *ANSWER_KEY_COLUMNS[:2],
        Column("sample_a", "INTEGER NOT NULL", "the earlier answer's sample number (a class representative)"),
        Column("sample_b", "INTEGER NOT NULL", "the later answer's sample number"),
        Column("method", "TEXT NOT NULL", "the equivalence method's id (config.Equivalence, analyze.equivalence)"),
        Column("same", "INTEGER", "1 same, 0 different; NULL when no verdict could be read (see error)"),
        Column("probability", "REAL", "the method's probability of 'same', where it gives one"),
        Column("raw", "TEXT", "what the method said (a judge's reply), for audit"),
        Column("error", "TEXT", "why there is no verdict"),
        Column("cost", "REAL", "USD the request cost (LM judges), so max_cost holds across runs"),
        Column("created_at", "TEXT NOT NULL", "when it was stored (UTC, ISO 8601)"),
    ), key=("system_id", "prompt_id", "sample_a", "sample_b", "method"),
        merge=MergeRule(conflict=("same",), real="same", what="equivalence verdict", hint=ONE_MACHINE), since=2),
)
TABLE = {t.name: t for t in TABLES}


# Migrations ---------------------------------------------------------------------------------------
def _version_0_to_1(db: sqlite3.Connection) -> None:
    """Create the tables and columns a pre-version store lacks. Version 1 is the first declaration, so this
    one migration may read TABLES; later ones must spell out their own statements, since TABLES moves on."""
    _complete(db, "main")


_VERDICTS_V2 = (
    "CREATE TABLE IF NOT EXISTS equivalence_verdicts (system_id TEXT NOT NULL, prompt_id TEXT NOT NULL, "
    "sample_a INTEGER NOT NULL, sample_b INTEGER NOT NULL, method TEXT NOT NULL, same INTEGER, probability REAL, "
    "raw TEXT, error TEXT, cost REAL, created_at TEXT NOT NULL, "
    "PRIMARY KEY (system_id, prompt_id, sample_a, sample_b, method))")


def _version_1_to_2(db: sqlite3.Connection) -> None:
    """Version 2 adds equivalence_verdicts (pair verdicts of judge, classifier and imported equivalence)."""
    db.execute(_VERDICTS_V2)


# MIGRATIONS[n] takes a store from version n to n + 1.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_version_0_to_1, _version_1_to_2)
assert len(MIGRATIONS) == SCHEMA_VERSION


def _complete(db: sqlite3.Connection, schema: str) -> None:
    for table in TABLES:
        have = existing_columns(db, schema, table.name)
        if not have:
            for statement in table.create_sql():
                db.execute(statement.replace("EXISTS ", f"EXISTS {schema}.", 1))
            continue
        for column in table.columns:
            if column.name not in have:        # only nullable columns were ever added after a table
                db.execute(f"ALTER TABLE {schema}.{table.name} ADD COLUMN {column.name} {column.type}")
        for name, cols in table.indexes:
            db.execute(f"CREATE INDEX IF NOT EXISTS {schema}.{name} ON {table.name} ({cols})")


# Opening ------------------------------------------------------------------------------------------
def existing_columns(db: sqlite3.Connection, schema: str, table: str) -> list[str]:
    """The columns of `schema`.`table` in the file; [] when it has no such table."""
    return [row[1] for row in db.execute(f"PRAGMA {schema}.table_info({table})")]


def check_file(db: sqlite3.Connection, path: Path, schema: str = "main") -> int:
    """The schema version of the store attached as `schema`, after checking that hivemind can use it:
    an empty file, or one with the core tables and a version this code knows. Reads only."""
    tables = {row[0] for row in db.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")}
    missing = [t for t in CORE_TABLES if t not in tables]
    if tables and missing:
        raise HivemindError(f"{path}: not a hivemind store (an SQLite file without the tables "
                            f"{', '.join(missing)}); it was left untouched. Give the store.sqlite of a run")
    version = db.execute(f"PRAGMA {schema}.user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise HivemindError(f"{path}: written by a newer hivemind (store schema version {version}; this one "
                            f"knows up to {SCHEMA_VERSION}); upgrade hivemind (pip install -U hivemind-bench) to use it")
    return version


def is_empty(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT COUNT(*) FROM main.sqlite_master").fetchone()[0] == 0


def upgrade(db: sqlite3.Connection, path: Path) -> None:
    """Bring the store open for writing to SCHEMA_VERSION in one transaction: all or nothing.

    A new (empty) file gets every table of the declaration at once; an older store runs the migrations from
    its version on. Another process may be upgrading the same file: the version is read again under the
    write lock, so the migrations run once."""
    version = check_file(db, path)
    if version == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = check_file(db, path)
        if is_empty(db):
            for table in TABLES:
                for statement in table.create_sql():
                    db.execute(statement)
        else:
            for migrate in MIGRATIONS[version:]:
                migrate(db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException as err:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass    # SQLite rolled back already (a full disk, say); the error on its way says why
        if isinstance(err, sqlite3.Error) and store_error(err, path) is None:
            raise HivemindError(f"{path}: cannot upgrade the store from schema version {version} to "
                                f"{SCHEMA_VERSION} ({err}); nothing was changed. The file was changed by "
                                f"something other than hivemind; {RESTORE}") from None
        raise


def read_through(db: sqlite3.Connection, path: Path) -> None:
    """Let a read-only connection read an older store as if it were current, without changing the file:
    a missing table becomes an empty TEMP table and a missing column NULL, through a TEMP view of the same
    name (SQLite looks names up in temp first). Call before `PRAGMA query_only`."""
    if check_file(db, path) == SCHEMA_VERSION:
        return
    for table in TABLES:
        have = existing_columns(db, "main", table.name)
        if not have:
            for statement in table.create_sql()[:1]:
                db.execute(statement.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
        elif set(table.column_names) - set(have):
            db.execute(f"CREATE TEMP VIEW {table.name} AS SELECT {select_list(table, have)} FROM main.{table.name}")


def select_list(table: Table, have: list[str]) -> str:
    """The declared columns of `table`, NULL for those missing from a file whose table has `have`."""
    return ", ".join(c if c in have else f"NULL AS {c}" for c in table.column_names)
