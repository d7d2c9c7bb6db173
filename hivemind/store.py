"""The store: one SQLite file per run (WAL), the single source of truth between stages.

Every response is committed the moment it arrives, so killing the collector at any point loses nothing
that was committed, and the next run asks only for what is missing. Responses are keyed by
(system identity, prompt id, sample index): the identity hashes model + api_base + params, so changed
settings never mix with old samples. Embeddings are cached by (embedder id, text hash): a text that
several systems produced is embedded once.
"""
from __future__ import annotations

import errno
import functools
import hashlib
import inspect
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hivemind import HivemindError

SCHEMA = """
CREATE TABLE IF NOT EXISTS systems (
    id TEXT PRIMARY KEY,          -- hash of model, api_base, params (config.System.identity)
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    api_base TEXT,
    params TEXT NOT NULL,         -- canonical JSON
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS prompts (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    category TEXT,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    system_id TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    sample INTEGER NOT NULL,
    seed INTEGER,
    text TEXT,                    -- NULL when the request failed for good (see error)
    text_hash TEXT,
    finish_reason TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_s REAL,
    cost REAL,
    error TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (system_id, prompt_id, sample)
);
CREATE TABLE IF NOT EXISTS embeddings (
    embedder TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BLOB NOT NULL,         -- float32, L2-normalised
    PRIMARY KEY (embedder, text_hash)
);
CREATE TABLE IF NOT EXISTS scores (
    system_id TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    sample INTEGER NOT NULL,
    scorer TEXT NOT NULL,         -- the scorer's name in the config (config.Scorer.name)
    score REAL,                   -- higher is better for every scorer; NULL when none could be read (see error)
    raw TEXT,                     -- what the scorer said (a judge's reply), for audit
    error TEXT,                   -- why there is no score (unparseable reply, refused, ...)
    cost REAL,                    -- USD the scorer's request cost (LM judges), so max_cost holds across runs
    created_at TEXT NOT NULL,
    PRIMARY KEY (system_id, prompt_id, sample, scorer)
);
"""


# The whitespace Python's str.strip() and SQLite's TRIM both remove here, so "blank" means one thing.
BLANKS = " \t\n\r\x0b\x0c"
SQL_BLANKS = "' ' || char(9) || char(10) || char(13) || char(11) || char(12)"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Prompt:
    id: str
    text: str
    category: str | None = None


@dataclass
class Response:
    system_id: str
    prompt_id: str
    sample: int
    text: str | None
    seed: int | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    cost: float | None = None
    error: str | None = None
    reasoning: str | None = None      # a reasoning model's thinking: stored apart (Store.add_reasoning), never embedded


@dataclass
class Score:
    """One quality score of one stored answer. Higher is better for every scorer."""
    system_id: str
    prompt_id: str
    sample: int
    scorer: str
    score: float | None
    raw: str | None = None
    error: str | None = None
    cost: float | None = None


@dataclass
class Answer:
    """One stored answer with its prompt's text: what a scorer reads."""
    system_id: str
    prompt_id: str
    sample: int
    prompt: str
    text: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.system_id, self.prompt_id, self.sample)


@dataclass
class PromptGroup:
    """All embedded responses to one prompt, ready for measurement.

    `systems[i]` is an index into the list of system ids the group was built for."""
    prompt_id: str
    systems: np.ndarray                      # int32, shape (n,)
    vectors: np.ndarray                      # float32, shape (n, d), rows L2-normalised
    texts: list[str] = field(default_factory=list)
    samples: np.ndarray | None = None        # int32, shape (n,)

    @property
    def sample_numbers(self) -> np.ndarray:
        """`samples`, or 0..n-1 for a group built without them (synthetic groups in benchmarks and tests)."""
        return self.samples if self.samples is not None else np.arange(len(self.systems))


# Errors -------------------------------------------------------------------------------------------
# Every SQLite and file-system error met by a store becomes one HivemindError here, naming the file and
# what to do. SQLite's primary result code (the low byte of sqlite_errorcode) tells the cases apart; the
# message text is the fallback for errors raised without a code.
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26
LOCK_TIMEOUT_S = 30.0
KEYS_PER_QUERY = 300          # 3 bound values per key stays under SQLite's oldest limit of 999 variables
RESTORE = ("keep the damaged file aside, then restore the run from a snapshot (`hivemind import "
           "results/snapshots/NAME --name RUN`) or collect it again under a new run name")


def store_error(err: BaseException, path: Path, timeout: float = LOCK_TIMEOUT_S) -> HivemindError | None:
    """The user-facing error for a failed store operation; None when `err` is no store problem (a bug)."""
    if isinstance(err, OSError):
        return file_error(err, "write there", path)
    if not isinstance(err, sqlite3.Error):
        return None
    code = (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(err)
    if code in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in text:
        return HivemindError(f"{path}: the store stayed locked by another process for {timeout:g} s ({text}); "
                             "wait for the other hivemind command on this run to finish (or stop it) and run "
                             "again; nothing was lost")
    if code in (SQLITE_READONLY, SQLITE_PERM) or "readonly" in text:
        return HivemindError(f"{path}: cannot write to the store: {read_only_reason(path)}. Nothing was lost, the "
                             "store is as it was; make it writable (chmod u+w, or remount read-write) and run "
                             "again, or copy the run folder somewhere writable and set results_dir to it")
    if code == SQLITE_FULL or "database or disk is full" in text:
        return HivemindError(f"{path}: the disk is full ({text}); free some space and run again; "
                             "everything committed before is kept")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
        return HivemindError(f"{path}: unreadable store ({text}): the file is damaged or is not a hivemind "
                             f"store; {RESTORE}")
    if code in (SQLITE_CANTOPEN, SQLITE_IOERR) or "unable to open" in text or "disk I/O error" in text:
        if path.is_dir():
            return HivemindError(f"{path}: is a folder, not a store file; move it away and run again")
        reason = read_only_reason(path)
        if reason:
            return HivemindError(f"{path}: cannot open the store: {reason}. Nothing was lost; make it "
                                 "writable (chmod u+w, or remount read-write) or copy the run folder somewhere "
                                 "writable and set results_dir to it")
        return HivemindError(f"{path}: cannot read the store ({text}); check that the disk is healthy and "
                             f"nothing else moved or truncated the file; if it persists, {RESTORE}")
    if "no such table" in text or "no such column" in text:
        return HivemindError(f"{path}: not a hivemind store ({text}); {RESTORE}")
    return None


def read_only_reason(path: Path) -> str:
    """Why `path` cannot be written, in words; "" when nothing visible stops it."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if os.statvfs(probe).f_flag & os.ST_RDONLY:
            return f"the file system holding {probe} is mounted read-only"
    except OSError:
        pass
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is read-only (permission denied)"
    folder = path.parent
    if folder.is_dir() and not os.access(folder, os.W_OK):
        return (f"permission denied in the folder {folder} (SQLite writes {path.name}-wal and "
                f"{path.name}-shm beside the store)")
    return ""


def file_error(err: OSError, doing: str, path: Path | None = None) -> HivemindError:
    """An OSError met while `doing` something to results files, as a message that says what it was.

    Callers write through temporary files renamed into place, so a failure leaves the previous files."""
    where = Path(err.filename) if err.filename else path
    if isinstance(err, (FileExistsError, NotADirectoryError)) and where is not None:
        conflict = folder_conflict(where)
        if conflict is not None:
            return conflict
    if err.errno == errno.EROFS:
        why = "the file system is mounted read-only"
    elif err.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    elif err.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full"
    else:
        why = err.strerror or type(err).__name__
    return HivemindError(f"{where}: cannot {doing}: {why}. Nothing was lost: the files already there are as "
                         "they were; make the folder writable, free space, or choose another results_dir, "
                         "and run again")


def folder_conflict(folder: Path) -> HivemindError | None:
    """The error when a file sits where `folder` or a folder above it should be (None when none does)."""
    folder = Path(folder)
    for candidate in [*reversed(folder.parents), folder]:
        if candidate.exists() and not candidate.is_dir():
            return HivemindError(f"{candidate}: is a file, but hivemind needs a folder there; "
                                 "move the file away or choose another results_dir")
    return None


def check_folder(folder: str | Path) -> Path:
    """`folder` and every folder above it must be folders or not exist yet; returns `folder`."""
    conflict = folder_conflict(Path(folder))
    if conflict is not None:
        raise conflict
    return Path(folder)


def _converted(err: Exception, path: Path, timeout: float) -> HivemindError | None:
    """pandas wraps SQLite errors in its own DatabaseError (an OSError without errno; the original is the
    cause), so the SQLite error is looked for first."""
    if isinstance(err, HivemindError):
        return None
    for candidate in (err, err.__cause__):
        if isinstance(candidate, sqlite3.Error):
            return store_error(candidate, path, timeout)
    if isinstance(err, OSError) and err.errno is not None:
        return store_error(err, path, timeout)
    return None


def _guard(method):
    """Turn store errors raised inside `method` into HivemindErrors; a generator is guarded while it is
    iterated, since SQLite reports a damaged page only when the cursor reaches it."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def guarded_generator(self, *args, **kwargs):
            try:
                yield from method(self, *args, **kwargs)
            except Exception as err:
                converted = _converted(err, self.path, self.timeout)
                if converted is None:
                    raise
                raise converted from None
        return guarded_generator

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as err:
            converted = _converted(err, self.path, self.timeout)
            if converted is None:
                raise
            raise converted from None
    return guarded


def _guard_public_methods(cls):
    """Every public method of the store, including ones added later, goes through _guard."""
    for name, value in list(vars(cls).items()):
        if inspect.isfunction(value) and not name.startswith("_") and name not in ("close", "transaction"):
            setattr(cls, name, _guard(value))
    return cls


@_guard_public_methods
class Store:
    """One run's SQLite store. Store(path) opens it for writing (creating it unless create=False);
    Store.open_readonly(path) opens an existing one for reading only. Any store error, whenever it
    surfaces, is raised as a HivemindError naming the file and what to do."""

    def __init__(self, path: str | Path, create: bool = True, timeout: float = LOCK_TIMEOUT_S):
        self.path = Path(path)
        self.timeout = timeout
        self.read_only = False
        if not create:
            self._require_file()
        try:
            check_folder(self.path.parent).mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=timeout)
        except (OSError, sqlite3.Error) as err:
            raise store_error(err, self.path, timeout) or err from None
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a killed process (the WAL is in the OS already); only a power
            # cut can drop the last transactions.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as err:
            self.db.close()
            raise store_error(err, self.path, timeout) or err from None

    @classmethod
    def open_readonly(cls, path: str | Path, timeout: float = LOCK_TIMEOUT_S) -> "Store":
        """Open an existing store for reading only: nothing is created, migrated or written.

        `PRAGMA query_only` makes SQLite refuse any change through the connection. Where the store and its
        folder are writable the file is opened as usual, so that SQLite removes its -wal and -shm files when
        the last connection closes and the folder is left as it was (a `mode=ro` connection would leave
        them behind). Otherwise it is opened by URI with `mode=ro`, which works while another process
        writes; in a read-only folder or file system, where SQLite cannot create the -shm file that WAL
        readers share, it is opened as immutable, which is exact because nobody can write there."""
        store = cls.__new__(cls)
        store.path, store.timeout, store.read_only = Path(path), timeout, True
        store._require_file()
        try:
            store.db = store._connect_readonly()
        except (OSError, sqlite3.Error) as err:
            raise store_error(err, store.path, timeout) or err from None
        return store

    def _require_file(self) -> None:
        check_folder(self.path.parent)
        if self.path.is_dir():
            raise HivemindError(f"{self.path}: is a folder, not a store file; move it away and run again")
        if not self.path.exists():
            raise HivemindError(f"{self.path}: no store here; run `hivemind collect` or `hivemind import` first")

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        if not read_only_reason(self.path) and not read_only_reason(self.path.parent / f"{self.path.name}-shm"):
            return self._probe(sqlite3.connect(self.path, isolation_level=None, timeout=self.timeout))
        try:
            return self._probe(sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None,
                                               timeout=self.timeout))
        except sqlite3.OperationalError:
            if not read_only_reason(self.path.parent / f"{self.path.name}-shm"):
                raise
        wal = self.path.parent / f"{self.path.name}-wal"
        if wal.is_file() and wal.stat().st_size > 0:
            raise HivemindError(f"{self.path}: the store's write-ahead log {wal} holds answers not yet merged "
                                f"into it, and the folder is read-only ({read_only_reason(wal)}), so they cannot "
                                "be read; copy the run folder somewhere writable and run there")
        return self._probe(sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None,
                                           timeout=self.timeout))

    @staticmethod
    def _probe(db: sqlite3.Connection) -> sqlite3.Connection:
        """Make the connection read-only and read the schema, so an unusable file fails here, not later."""
        try:
            db.execute("PRAGMA query_only = ON")
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            db.close()
            raise
        return db

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Systems and prompts ------------------------------------------------------------------------
    def add_system(self, system_id: str, name: str, model: str, api_base: str | None, params: dict) -> None:
        self.db.execute(
            "INSERT INTO systems (id, name, model, api_base, params, created_at) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET name = excluded.name",
            (system_id, name, model, api_base, json.dumps(params, sort_keys=True), now()),
        )

    def systems(self) -> list[dict]:
        rows = self.db.execute("SELECT id, name, model, api_base, params, created_at FROM systems ORDER BY created_at, name")
        return [dict(zip(("id", "name", "model", "api_base", "params", "created_at"), row)) for row in rows]

    def check_prompts(self, prompts: Iterable[Prompt]) -> None:
        """A stored prompt whose text changed under the same id is an error: its answers are to another text."""
        existing = dict(self.db.execute("SELECT id, text FROM prompts"))
        for prompt in prompts:
            if existing.get(prompt.id, prompt.text) != prompt.text:
                raise HivemindError(f"prompt {prompt.id!r} is stored with a different text in {self.path}; "
                                    "give changed prompts new ids or use a new run name")

    def add_prompts(self, prompts: Iterable[Prompt]) -> None:
        """Insert the prompts not stored yet, after check_prompts."""
        prompts = list(prompts)
        self.check_prompts(prompts)
        start = self.db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM prompts").fetchone()[0]
        existing = {row[0] for row in self.db.execute("SELECT id FROM prompts")}
        rows = []
        for prompt in prompts:
            if prompt.id in existing:
                continue
            existing.add(prompt.id)
            rows.append((prompt.id, prompt.text, prompt.category, start + len(rows)))
        with self.transaction():
            self.db.executemany("INSERT INTO prompts (id, text, category, position) VALUES (?,?,?,?)", rows)

    def prompts(self) -> list[Prompt]:
        rows = self.db.execute("SELECT id, text, category FROM prompts ORDER BY position")
        return [Prompt(*row) for row in rows]

    # Responses ----------------------------------------------------------------------------------
    def done_keys(self, system_id: str) -> set[tuple[str, int]]:
        """(prompt id, sample) pairs that need no request: answered, or failed for good."""
        rows = self.db.execute("SELECT prompt_id, sample FROM responses WHERE system_id = ?", (system_id,))
        return set(rows)

    def add_response(self, r: Response) -> None:
        """Commit one response at once (autocommit): the unit of durability is a single sample."""
        self.db.execute(
            "INSERT OR IGNORE INTO responses (system_id, prompt_id, sample, seed, text, text_hash, finish_reason, "
            "prompt_tokens, completion_tokens, latency_s, cost, error, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (r.system_id, r.prompt_id, r.sample, r.seed, r.text, text_hash(r.text) if r.text is not None else None,
             r.finish_reason, r.prompt_tokens, r.completion_tokens, r.latency_s, r.cost, r.error, now()),
        )

    def add_responses(self, responses: Iterable[Response]) -> None:
        with self.transaction():
            for r in responses:
                self.add_response(r)

    def count_responses(self, system_ids: list[str] | None = None, with_text: bool = False) -> int:
        sql = "SELECT COUNT(*) FROM responses WHERE 1=1"
        args: list = []
        if system_ids is not None:
            sql += f" AND system_id IN ({','.join('?' * len(system_ids))})"
            args += system_ids
        if with_text:
            sql += " AND text IS NOT NULL"
        return self.db.execute(sql, args).fetchone()[0]

    def total_cost(self, system_ids: list[str] | None = None) -> float:
        sql = "SELECT COALESCE(SUM(cost), 0) FROM responses"
        args: list = []
        if system_ids is not None:
            sql += f" WHERE system_id IN ({','.join('?' * len(system_ids))})"
            args = system_ids
        return float(self.db.execute(sql, args).fetchone()[0])

    def responses_frame(self, system_ids: list[str] | None = None):
        """All responses joined with system names and prompt texts, as a pandas DataFrame."""
        import pandas as pd

        sql = ("SELECT s.name AS system, r.system_id, r.prompt_id, p.text AS prompt, p.category, r.sample, r.seed, "
               "r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens, r.latency_s, r.cost, r.error, "
               "r.created_at FROM responses r JOIN systems s ON s.id = r.system_id "
               "JOIN prompts p ON p.id = r.prompt_id")
        args: list = []
        if system_ids is not None:
            sql += f" WHERE r.system_id IN ({','.join('?' * len(system_ids))})"
            args = system_ids
        sql += " ORDER BY p.position, s.name, r.sample"
        return pd.read_sql_query(sql, self.db, params=args)

    def export_parquet(self, path: str | Path, system_ids: list[str] | None = None) -> Path:
        frame = self.responses_frame(system_ids)
        path = Path(path)
        frame.to_parquet(path, index=False)
        return path

    # Embeddings ---------------------------------------------------------------------------------
    def texts_to_embed(self, embedder: str, system_ids: list[str]) -> list[tuple[str, str]]:
        """Distinct (hash, text) pairs among these systems' responses with no vector yet."""
        marks = ",".join("?" * len(system_ids))
        rows = self.db.execute(
            f"SELECT r.text_hash, MIN(r.text) FROM responses r LEFT JOIN embeddings e "
            f"ON e.embedder = ? AND e.text_hash = r.text_hash "
            f"WHERE r.system_id IN ({marks}) AND r.text IS NOT NULL AND e.text_hash IS NULL "
            f"GROUP BY r.text_hash ORDER BY r.text_hash",
            [embedder, *system_ids],
        )
        return list(rows)

    def add_embeddings(self, embedder: str, hashes: list[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO embeddings (embedder, text_hash, vector) VALUES (?,?,?)",
                ((embedder, h, v.tobytes()) for h, v in zip(hashes, vectors)),
            )

    def count_embeddings(self, embedder: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM embeddings WHERE embedder = ?", (embedder,)).fetchone()[0]

    def iter_prompt_groups(self, embedder: str, system_ids: list[str],
                           positions: tuple[int | None, int | None] | None = None) -> Iterator[PromptGroup]:
        """Stream one PromptGroup per prompt, in prompt order: memory holds one prompt at a time.

        Responses without text (failed) or without a vector for `embedder` are left out. `positions`
        (first, end) keeps the prompts with first <= position < end (None: unbounded), a shard of the
        prompts for a distributed analysis (hivemind.distributed)."""
        index = {sid: i for i, sid in enumerate(system_ids)}
        marks = ",".join("?" * len(system_ids))
        where, bounds = _position_range(positions)
        cursor = self.db.execute(
            f"SELECT r.prompt_id, r.system_id, r.sample, r.text, e.vector FROM responses r "
            f"JOIN prompts p ON p.id = r.prompt_id "
            f"JOIN embeddings e ON e.embedder = ? AND e.text_hash = r.text_hash "
            f"WHERE r.system_id IN ({marks}) AND r.text IS NOT NULL{where} "
            f"ORDER BY p.position, r.system_id, r.sample",
            [embedder, *system_ids, *bounds],
        )
        current, rows = None, []
        for row in cursor:
            if row[0] != current and rows:
                yield _group(current, rows, index)
                rows = []
            current = row[0]
            rows.append(row)
        if rows:
            yield _group(current, rows, index)

    # Reads for a distributed analysis (hivemind.distributed) ---------------------------------------
    def prompt_group_sizes(self, embedder: str, system_ids: list[str]) -> list[tuple[str, int, int]]:
        """(prompt id, position, answers) per prompt, in prompt order: the size of each prompt's group from
        iter_prompt_groups once blank answers are dropped (non-blank, embedded answers of these systems).
        Prompts with none are left out, as analysis skips them."""
        return list(self.db.execute(
            f"SELECT r.prompt_id, p.position, COUNT(*) FROM responses r JOIN prompts p ON p.id = r.prompt_id "
            f"JOIN embeddings e ON e.embedder = ? AND e.text_hash = r.text_hash "
            f"WHERE {_with_text(system_ids)} AND NOT {_BLANK} GROUP BY r.prompt_id ORDER BY p.position",
            [embedder, *system_ids]))

    def iter_system_texts(self, embedder: str, system_id: str) -> Iterator[str]:
        """One system's embedded answers (blank ones included), in the order iter_prompt_groups yields them:
        by prompt position, then sample."""
        cursor = self.db.execute(
            "SELECT r.text FROM responses r JOIN prompts p ON p.id = r.prompt_id "
            "JOIN embeddings e ON e.embedder = ? AND e.text_hash = r.text_hash "
            "WHERE r.system_id = ? AND r.text IS NOT NULL ORDER BY p.position, r.sample", (embedder, system_id))
        for (text,) in cursor:
            yield text

    def hashes_with_chunk_counts(self, embedder: str, hashes: list[str]) -> set[str]:
        """Of these text hashes, those already embedded (with a chunk count) under `embedder`."""
        self._ensure_chunk_table()
        found: set[str] = set()
        for start in range(0, len(hashes), KEYS_PER_QUERY):
            batch = hashes[start:start + KEYS_PER_QUERY]
            found.update(h for (h,) in self.db.execute(
                f"SELECT text_hash FROM embedding_chunks WHERE embedder = ? AND text_hash IN ({_marks(batch)})",
                [embedder, *batch]))
        return found

    # Scores -------------------------------------------------------------------------------------
    def add_scores(self, scores: Iterable[Score]) -> None:
        """Insert or replace scores in one transaction (a re-score of the same key replaces it)."""
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO scores (system_id, prompt_id, sample, scorer, score, raw, error, cost, "
                "created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                ((s.system_id, s.prompt_id, s.sample, s.scorer, s.score, s.raw, s.error, s.cost, now())
                 for s in scores))

    def answers_to_score(self, scorer: str, system_ids: list[str]) -> list[Answer]:
        """Stored answers (text not NULL) of these systems with no row yet for `scorer`, in prompt order."""
        marks = ",".join("?" * len(system_ids))
        rows = self.db.execute(
            f"SELECT r.system_id, r.prompt_id, r.sample, p.text, r.text FROM responses r "
            f"JOIN prompts p ON p.id = r.prompt_id "
            f"LEFT JOIN scores s ON s.scorer = ? AND s.system_id = r.system_id AND s.prompt_id = r.prompt_id "
            f"AND s.sample = r.sample "
            f"WHERE r.system_id IN ({marks}) AND r.text IS NOT NULL AND s.scorer IS NULL "
            f"ORDER BY p.position, r.system_id, r.sample",
            [scorer, *system_ids])
        return [Answer(*row) for row in rows]

    def answer_texts(self, system_ids: list[str] | None = None) -> dict[tuple[str, str, int], str]:
        """(system id, prompt id, sample) -> text of every stored answer (text not NULL)."""
        sql = "SELECT system_id, prompt_id, sample, text FROM responses WHERE text IS NOT NULL"
        args: list = []
        if system_ids is not None:
            sql += f" AND system_id IN ({','.join('?' * len(system_ids))})"
            args = system_ids
        return {(a, b, c): text for a, b, c, text in self.db.execute(sql, args)}

    def browsable_answers(self, system_ids: list[str]) -> list[tuple]:
        """(system id, prompt id, sample, text, finish_reason, error) of every stored response of these
        systems, text or error, in prompt order: what the report's answer browser shows."""
        return self.db.execute(
            f"SELECT r.system_id, r.prompt_id, r.sample, r.text, r.finish_reason, r.error FROM responses r "
            f"JOIN prompts p ON p.id = r.prompt_id WHERE r.system_id IN ({_marks(system_ids)}) "
            f"ORDER BY p.position, r.system_id, r.sample", system_ids).fetchall()

    def scoring_cost(self) -> float:
        return float(self.db.execute("SELECT COALESCE(SUM(cost), 0) FROM scores").fetchone()[0])

    def vectors(self, embedder: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Cached vectors of these text hashes under `embedder` (hashes with none are left out)."""
        out = {}
        for h in set(hashes):
            row = self.db.execute("SELECT vector FROM embeddings WHERE embedder = ? AND text_hash = ?",
                                  (embedder, h)).fetchone()
            if row is not None:
                out[h] = np.frombuffer(row[0], dtype=np.float32)
        return out

    def scored_keys(self, scorer: str) -> set[tuple[str, str, int]]:
        """(system id, prompt id, sample) keys that already have a row (a score or an error) for `scorer`."""
        return set(self.db.execute("SELECT system_id, prompt_id, sample FROM scores WHERE scorer = ?", (scorer,)))

    def scores_frame(self, system_ids: list[str] | None = None):
        """Every score row as a DataFrame: system_id, prompt_id, sample, scorer, score, error."""
        import pandas as pd

        sql = "SELECT system_id, prompt_id, sample, scorer, score, error FROM scores"
        args: list = []
        if system_ids is not None:
            sql += f" WHERE system_id IN ({','.join('?' * len(system_ids))})"
            args = system_ids
        return pd.read_sql_query(sql + " ORDER BY system_id, prompt_id, sample, scorer", self.db, params=args)

    def prompt_vectors(self, embedder: str) -> dict[str, np.ndarray]:
        """Embeddings of the prompt texts themselves (for answer-prompt relevance), by prompt id.

        Prompts share the embedding cache with answers, keyed by the hash of their text."""
        out = {}
        for prompt in self.prompts():
            row = self.db.execute("SELECT vector FROM embeddings WHERE embedder = ? AND text_hash = ?",
                                  (embedder, text_hash(prompt.text))).fetchone()
            if row is not None:
                out[prompt.id] = np.frombuffer(row[0], dtype=np.float32)
        return out

    # Chunked embeddings (embed stage) ----------------------------------------------------------
    # How many windows each embedded text needed, beside its vector: a text longer than the embedder's
    # window is embedded in chunks and pooled (embed.py), and the report says how often that happened.
    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() \
            is not None

    def _ensure_chunk_table(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS embedding_chunks ("
            "embedder TEXT NOT NULL, text_hash TEXT NOT NULL, "
            "chunks INTEGER NOT NULL, "         # windows the text needed; 1 = it fitted whole
            "tokens INTEGER NOT NULL, "         # its length in the embedder's tokens (estimated for APIs)
            "PRIMARY KEY (embedder, text_hash))")
        # chunk_counts_by_system joins on text_hash alone: without this index it is quadratic in the answers
        # (47 s of the 69 s it took to embed 10,000 API texts).
        self.db.execute("CREATE INDEX IF NOT EXISTS embedding_chunks_by_text ON embedding_chunks (text_hash)")

    def texts_without_chunk_counts(self, embedder: str, system_ids: list[str]) -> list[tuple[str, str]]:
        """Distinct (hash, text) pairs to embed: these systems' answers and every prompt text, with no chunk
        count yet for `embedder`. A vector stored before chunk counts existed (maybe truncated) is included."""
        self._ensure_chunk_table()
        marks = ",".join("?" * len(system_ids))
        rows = dict(self.db.execute(
            f"SELECT r.text_hash, MIN(r.text) FROM responses r LEFT JOIN embedding_chunks c "
            f"ON c.embedder = ? AND c.text_hash = r.text_hash "
            f"WHERE r.system_id IN ({marks}) AND r.text IS NOT NULL AND c.text_hash IS NULL "
            f"GROUP BY r.text_hash", [embedder, *system_ids]))
        counted = {h for (h,) in self.db.execute("SELECT text_hash FROM embedding_chunks WHERE embedder = ?",
                                                 (embedder,))}
        for prompt in self.prompts():
            key = text_hash(prompt.text)
            if key not in counted:
                rows.setdefault(key, prompt.text)
        return sorted(rows.items())

    def add_chunked_embeddings(self, embedder: str, hashes: list[str], vectors: np.ndarray,
                               chunks: np.ndarray, tokens: np.ndarray) -> None:
        """Store vectors and their chunk counts in one transaction (both or neither)."""
        self._ensure_chunk_table()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO embeddings (embedder, text_hash, vector) VALUES (?,?,?)",
                ((embedder, h, v.tobytes()) for h, v in zip(hashes, vectors)))
            self.db.executemany(
                "INSERT OR REPLACE INTO embedding_chunks (embedder, text_hash, chunks, tokens) VALUES (?,?,?,?)",
                ((embedder, h, int(c), int(t)) for h, c, t in zip(hashes, chunks, tokens)))

    def chunk_counts(self, embedder: str) -> dict[str, int]:
        """Text hash -> windows it needed under `embedder`."""
        self._ensure_chunk_table()
        return dict(self.db.execute("SELECT text_hash, chunks FROM embedding_chunks WHERE embedder = ?", (embedder,)))

    def chunk_counts_by_system(self, system_ids: list[str]) -> list[tuple]:
        """Per (embedder, system): answers with a chunk count, how many needed > 1 window, the most windows
        and the most tokens of one answer. Counts answers, not distinct texts."""
        self._ensure_chunk_table()
        marks = ",".join("?" * len(system_ids))
        return list(self.db.execute(
            f"SELECT c.embedder, r.system_id, COUNT(*), SUM(c.chunks > 1), MAX(c.chunks), MAX(c.tokens) "
            f"FROM responses r JOIN embedding_chunks c ON c.text_hash = r.text_hash "
            f"WHERE r.system_id IN ({marks}) AND r.text IS NOT NULL "
            f"GROUP BY c.embedder, r.system_id ORDER BY c.embedder, r.system_id", system_ids))

    def embedders(self) -> list[str]:
        """Embedder ids that have vectors in this store."""
        return [e for (e,) in self.db.execute("SELECT DISTINCT embedder FROM embeddings ORDER BY embedder")]

    # Reads for the analysis, the report and snapshots --------------------------------------------
    # "Answered" below means a response with non-blank text: blank answers are skipped by the analysis.
    def response_counts_per_system(self, system_ids: list[str]) -> dict[str, tuple[int, int]]:
        """(responses with text, how many of them blank) per system id; (0, 0) for a system with none."""
        counts = dict.fromkeys(system_ids, (0, 0))
        rows = self.db.execute(
            f"SELECT system_id, COUNT(*), SUM({_BLANK}) FROM responses r WHERE {_with_text(system_ids)} "
            f"GROUP BY system_id", system_ids)
        for system_id, n, n_blank in rows:
            counts[system_id] = (n, n_blank or 0)
        return counts

    def count_not_embedded(self, embedder: str, system_ids: list[str]) -> int:
        """Non-blank responses of these systems that have no vector for `embedder` yet."""
        return self.db.execute(
            f"SELECT COUNT(*) FROM responses r LEFT JOIN embeddings e ON e.embedder = ? AND e.text_hash = r.text_hash "
            f"WHERE {_with_text(system_ids)} AND NOT {_BLANK} AND e.text_hash IS NULL",
            [embedder, *system_ids]).fetchone()[0]

    def max_samples_per_prompt(self, system_ids: list[str]) -> dict[str, int]:
        """Per system id, the most non-blank samples it has for any one prompt (0 when it has none)."""
        most = dict.fromkeys(system_ids, 0)
        rows = self.db.execute(
            f"SELECT system_id, MAX(c) FROM (SELECT r.system_id, COUNT(*) AS c FROM responses r "
            f"WHERE {_with_text(system_ids)} AND NOT {_BLANK} GROUP BY r.system_id, r.prompt_id) GROUP BY system_id",
            system_ids)
        for system_id, m in rows:
            most[system_id] = m
        return most

    def n_prompts_with_text(self, system_ids: list[str]) -> int:
        """How many prompts at least one of these systems answered with text (blank included)."""
        return self.db.execute(f"SELECT COUNT(DISTINCT prompt_id) FROM responses r WHERE {_with_text(system_ids)}",
                               system_ids).fetchone()[0]

    def texts_for_keys(self, keys: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str, int], str]:
        """Texts of the responses keyed (system id, prompt id, sample); keys with no text are left out.

        One query per KEYS_PER_QUERY keys (a VALUES list joined on the primary key), not one per key."""
        keys = list(dict.fromkeys((s, p, int(n)) for s, p, n in keys))
        texts: dict[tuple[str, str, int], str] = {}
        for start in range(0, len(keys), KEYS_PER_QUERY):
            batch = keys[start:start + KEYS_PER_QUERY]
            values = ",".join(["(?,?,?)"] * len(batch))
            rows = self.db.execute(
                f"WITH k(system_id, prompt_id, sample) AS (VALUES {values}) SELECT r.system_id, r.prompt_id, "
                f"r.sample, r.text FROM k JOIN responses r ON r.system_id = k.system_id "
                f"AND r.prompt_id = k.prompt_id AND r.sample = k.sample WHERE r.text IS NOT NULL",
                [value for key in batch for value in key])
            texts.update(((s, p, n), text) for s, p, n, text in rows)
        return texts

    def vectors_for_prompts(self, embedder: str, system_ids: list[str], prompt_ids: list[str]
                            ) -> dict[str, tuple[list[str], np.ndarray]]:
        """Per prompt id: (system id of each answer, their `embedder` vectors (n, d)) for every non-blank,
        embedded answer of these systems, in (system id, sample) order. Prompts with none are left out."""
        found: dict[str, tuple[list[str], list[np.ndarray]]] = {}
        for start in range(0, len(prompt_ids), KEYS_PER_QUERY):
            batch = prompt_ids[start:start + KEYS_PER_QUERY]
            rows = self.db.execute(
                f"SELECT r.prompt_id, r.system_id, e.vector FROM responses r JOIN embeddings e ON e.embedder = ? "
                f"AND e.text_hash = r.text_hash WHERE r.prompt_id IN ({_marks(batch)}) AND {_with_text(system_ids)} "
                f"AND NOT {_BLANK} ORDER BY r.prompt_id, r.system_id, r.sample",
                [embedder, *batch, *system_ids])
            for prompt_id, system_id, vector in rows:
                systems, vectors = found.setdefault(prompt_id, ([], []))
                systems.append(system_id)
                vectors.append(np.frombuffer(vector, dtype=np.float32))
        return {p: (systems, np.vstack(vectors)) for p, (systems, vectors) in found.items()}

    def embeddings_for_systems(self, embedder: str, system_ids: list[str]
                               ) -> tuple[list[str], list[np.ndarray], list[int | None], list[int | None]]:
        """(text hashes, float32 vectors, chunk counts, token counts) of `embedder` for every distinct text
        these systems produced and every prompt text, ordered by hash. Chunk and token counts are None for a
        vector stored without them. A snapshot carries all four, so an import needs no re-embedding."""
        prompt_hashes = [text_hash(p.text) for p in self.prompts()]
        # read-only callers (snapshot publish) must not create the chunk table: an old store may lack it
        chunk_table = "embedding_chunks" if self._has_table("embedding_chunks") else \
            "(SELECT NULL AS embedder, NULL AS text_hash, NULL AS chunks, NULL AS tokens)"
        rows = self.db.execute(
            f"SELECT e.text_hash, e.vector, c.chunks, c.tokens FROM embeddings e LEFT JOIN {chunk_table} c "
            f"ON c.embedder = e.embedder AND c.text_hash = e.text_hash WHERE e.embedder = ? AND (e.text_hash IN "
            f"(SELECT DISTINCT text_hash FROM responses WHERE system_id IN ({_marks(system_ids)}) "
            f"AND text_hash IS NOT NULL) OR e.text_hash IN (SELECT value FROM json_each(?))) ORDER BY e.text_hash",
            [embedder, *system_ids, json.dumps(prompt_hashes)])
        hashes, vectors, chunks, tokens = [], [], [], []
        for text_hash_, vector, n_chunks, n_tokens in rows:
            hashes.append(text_hash_)
            vectors.append(np.frombuffer(vector, dtype=np.float32))
            chunks.append(n_chunks)
            tokens.append(n_tokens)
        return hashes, vectors, chunks, tokens

    # Plumbing -----------------------------------------------------------------------------------
    def transaction(self):
        return _Transaction(self)

    # Collector bookkeeping (collect --retry-errors, honest counts, "every request failed") ---------
    def insert_response(self, r: Response) -> bool:
        """add_response, saying whether a row was really inserted (False: the key was already stored)."""
        before = self.db.total_changes
        self.add_response(r)
        return self.db.total_changes > before

    def error_keys(self, system_id: str) -> set[tuple[str, int]]:
        """(prompt id, sample) pairs stored as a permanent error (no text)."""
        rows = self.db.execute("SELECT prompt_id, sample FROM responses WHERE system_id = ? AND text IS NULL "
                               "AND error IS NOT NULL", (system_id,))
        return set(rows)

    def replace_error_response(self, r: Response) -> bool:
        """Store a new outcome for a key, replacing a stored permanent error; an answered key is kept.

        One transaction: the old error and the new outcome are never both missing."""
        with self.transaction():
            self.db.execute("DELETE FROM responses WHERE system_id = ? AND prompt_id = ? AND sample = ? "
                            "AND text IS NULL", (r.system_id, r.prompt_id, r.sample))
            return self.insert_response(r)

    def outcome_counts(self, system_ids: list[str]) -> dict[str, tuple[int, int]]:
        """{system id: (answers, permanent errors)} for the systems that have any stored row."""
        marks = ",".join("?" * len(system_ids))
        rows = self.db.execute(
            f"SELECT system_id, SUM(text IS NOT NULL), SUM(text IS NULL AND error IS NOT NULL) FROM responses "
            f"WHERE system_id IN ({marks}) GROUP BY system_id", system_ids)
        return {sid: (int(answers or 0), int(errors or 0)) for sid, answers, errors in rows}

    def first_error(self, system_ids: list[str]) -> str | None:
        """The earliest stored error message among these systems (None: there is none)."""
        marks = ",".join("?" * len(system_ids))
        row = self.db.execute(
            f"SELECT error FROM responses WHERE system_id IN ({marks}) AND text IS NULL AND error IS NOT NULL "
            f"ORDER BY created_at, rowid LIMIT 1", system_ids).fetchone()
        return row[0] if row else None

    def system_outcomes(self, system_ids: list[str]) -> dict[str, tuple[int, int, int, float]]:
        """{system id: (answers with text, permanent errors, answers cut at the token limit, USD cost)};
        (0, 0, 0, 0.0) for a system with no stored row. For the run summary and results.json."""
        outcomes = dict.fromkeys(system_ids, (0, 0, 0, 0.0))
        rows = self.db.execute(
            f"SELECT system_id, SUM(text IS NOT NULL), SUM(text IS NULL AND error IS NOT NULL), "
            f"SUM(text IS NOT NULL AND finish_reason = 'length'), COALESCE(SUM(cost), 0) FROM responses "
            f"WHERE system_id IN ({_marks(system_ids)}) GROUP BY system_id", system_ids)
        for sid, answers, errors, truncated, cost in rows:
            outcomes[sid] = (int(answers or 0), int(errors or 0), int(truncated or 0), float(cost or 0.0))
        return outcomes

    # Reasoning text of reasoning models, kept apart from the answer that gets embedded -----------------
    def _ensure_reasoning_table(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS reasoning (system_id TEXT NOT NULL, prompt_id TEXT NOT NULL, "
                        "sample INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (system_id, prompt_id, sample))")

    def add_reasoning(self, system_id: str, prompt_id: str, sample: int, text: str) -> None:
        self._ensure_reasoning_table()
        self.db.execute("INSERT OR REPLACE INTO reasoning (system_id, prompt_id, sample, text) VALUES (?,?,?,?)",
                        (system_id, prompt_id, sample, text))

    def reasoning(self, system_id: str, prompt_id: str, sample: int) -> str | None:
        self._ensure_reasoning_table()
        row = self.db.execute("SELECT text FROM reasoning WHERE system_id = ? AND prompt_id = ? AND sample = ?",
                              (system_id, prompt_id, sample)).fetchone()
        return row[0] if row else None

    # Prompt categories assigned by an LM classifier (`hivemind classify`), cached per classifier --------
    def _ensure_label_table(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS prompt_labels (prompt_id TEXT NOT NULL, classifier TEXT NOT NULL, "
                        "label TEXT, raw TEXT, error TEXT, PRIMARY KEY (prompt_id, classifier))")

    def add_prompt_label(self, prompt_id: str, classifier: str, label: str | None, raw: str | None,
                         error: str | None) -> None:
        self._ensure_label_table()
        self.db.execute("INSERT OR REPLACE INTO prompt_labels (prompt_id, classifier, label, raw, error) "
                        "VALUES (?,?,?,?,?)", (prompt_id, classifier, label, raw, error))

    def labelled_prompts(self, classifier: str) -> set[str]:
        self._ensure_label_table()
        return {row[0] for row in self.db.execute("SELECT prompt_id FROM prompt_labels WHERE classifier = ?",
                                                  (classifier,))}

    def prompt_labels(self) -> dict[str, str]:
        """{prompt id: label} from the classifier, the most recent classifier's label where several ran."""
        if self.read_only:      # analyze reads: no table yet means no labels, and nothing may be created
            exists = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'prompt_labels'")
            if exists.fetchone() is None:
                return {}
        else:
            self._ensure_label_table()
        rows = self.db.execute("SELECT prompt_id, label FROM prompt_labels WHERE label IS NOT NULL ORDER BY rowid")
        return {pid: label for pid, label in rows}

    # One prompt's embedded answers (the cluster view) ----------------------------------------------------
    def prompt_group(self, embedder: str, system_ids: list[str], prompt_id: str) -> PromptGroup | None:
        """The embedded answers of these systems to one prompt, or None when it has none."""
        index = {sid: i for i, sid in enumerate(system_ids)}
        marks = ",".join("?" * len(system_ids))
        rows = self.db.execute(
            f"SELECT r.prompt_id, r.system_id, r.sample, r.text, e.vector FROM responses r "
            f"JOIN embeddings e ON e.embedder = ? AND e.text_hash = r.text_hash "
            f"WHERE r.prompt_id = ? AND r.system_id IN ({marks}) AND r.text IS NOT NULL "
            f"ORDER BY r.system_id, r.sample", [embedder, prompt_id, *system_ids]).fetchall()
        return _group(prompt_id, rows, index) if rows else None

    # Merging stores collected on several machines (hivemind merge) -------------------------------
    def merge_stores(self, paths: list[Path]) -> "MergeCounts":
        """Copy every row of the stores at `paths` that this store lacks, in one transaction.

        Same key, same content: merged (nothing to do). A prompt id with another text, or an answer key
        (system, prompt, sample) with another text, is a conflict: HivemindError naming the key, and
        nothing is written. A stored permanent error is replaced by an answer for the same key; an
        answer is never replaced. Embeddings, chunk counts and scores: rows this store lacks are added."""
        if len(paths) > 9:
            raise HivemindError("merge at most 9 stores at a time (SQLite attaches 10 databases); merge in rounds")
        names = [f"src{i}" for i in range(len(paths))]
        for name, path in zip(names, paths):
            self.db.execute(f"ATTACH DATABASE ? AS {name}", (str(path),))
        try:
            before = self._merge_counts()
            with self.transaction():
                for name, path in zip(names, paths):
                    self._merge_one(name, path)
            after = self._merge_counts()
        finally:
            for name in names:
                self.db.execute(f"DETACH DATABASE {name}")
        return MergeCounts(*(a - b for a, b in zip(after, before)))

    def _merge_counts(self) -> tuple[int, ...]:
        tables = ("systems", "prompts", "responses", "embeddings", "scores")
        return tuple(self.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables)

    def _merge_one(self, src: str, path: Path) -> None:
        row = self.db.execute(f"SELECT p.id FROM {src}.prompts p JOIN prompts q ON q.id = p.id "
                              f"WHERE q.text <> p.text LIMIT 1").fetchone()
        if row:
            raise HivemindError(f"{path}: prompt {row[0]!r} has another text than in {self.path}; "
                                f"nothing merged (these stores are not the same run)")
        row = self.db.execute(
            f"SELECT r.system_id, r.prompt_id, r.sample FROM {src}.responses r JOIN responses o "
            f"ON o.system_id = r.system_id AND o.prompt_id = r.prompt_id AND o.sample = r.sample "
            f"WHERE r.text IS NOT NULL AND o.text IS NOT NULL AND r.text <> o.text LIMIT 1").fetchone()
        if row:
            raise HivemindError(f"{path}: sample (system {row[0]}, prompt {row[1]!r}, sample {row[2]}) has another "
                                f"text than in {self.path}; nothing merged (collect each system on one machine only)")
        self.db.execute(f"INSERT OR IGNORE INTO systems SELECT * FROM {src}.systems")
        start = self.db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM prompts").fetchone()[0]
        self.db.execute(f"INSERT OR IGNORE INTO prompts (id, text, category, position) "
                        f"SELECT id, text, category, ? + position FROM {src}.prompts ORDER BY position", (start,))
        self.db.execute(f"DELETE FROM responses WHERE text IS NULL AND EXISTS (SELECT 1 FROM {src}.responses r "
                        f"WHERE r.system_id = responses.system_id AND r.prompt_id = responses.prompt_id "
                        f"AND r.sample = responses.sample AND r.text IS NOT NULL)")
        columns = ("system_id, prompt_id, sample, seed, text, text_hash, finish_reason, prompt_tokens, "
                   "completion_tokens, latency_s, cost, error, created_at")
        self.db.execute(f"INSERT OR IGNORE INTO responses ({columns}) SELECT {columns} FROM {src}.responses")
        self.db.execute(f"INSERT OR IGNORE INTO embeddings (embedder, text_hash, vector) "
                        f"SELECT embedder, text_hash, vector FROM {src}.embeddings")
        self.db.execute(f"INSERT OR IGNORE INTO scores (system_id, prompt_id, sample, scorer, score, raw, error, "
                        f"created_at) SELECT system_id, prompt_id, sample, scorer, score, raw, error, created_at "
                        f"FROM {src}.scores")
        has_chunks = self.db.execute(f"SELECT 1 FROM {src}.sqlite_master WHERE name = 'embedding_chunks'").fetchone()
        if has_chunks:
            self._ensure_chunk_table()
            self.db.execute(f"INSERT OR IGNORE INTO embedding_chunks (embedder, text_hash, chunks, tokens) "
                            f"SELECT embedder, text_hash, chunks, tokens FROM {src}.embedding_chunks")

    # The content fingerprint (hivemind.fingerprint): what an analysis read, as ordered rows ---------------
    def iter_fingerprint_rows(self, embedder: str, system_ids: list[str],
                              scorers: list[str]) -> Iterator[tuple[str, tuple]]:
        """(section, row) in a fixed order, streamed by SQLite cursors (never all in memory):
        "prompt" (id, text, category) in store order; "answer" (system id, prompt id, sample, text hash, error)
        of these systems; "vector" (text hash, float32 bytes) of `embedder` for their answer texts and the
        prompt texts; "score" (system id, prompt id, sample, scorer, score, error) of their answers by
        these scorers.
        Sorted by key so that equal content gives equal rows whatever order it was stored in."""
        prompt_hashes = []
        for row in self.db.execute("SELECT id, text, category FROM prompts ORDER BY position, id"):
            prompt_hashes.append(text_hash(row[1]))
            yield "prompt", row
        marks = _marks(system_ids)
        for row in self.db.execute(f"SELECT system_id, prompt_id, sample, text_hash, error FROM responses "
                                   f"WHERE system_id IN ({marks}) ORDER BY system_id, prompt_id, sample",
                                   system_ids):
            yield "answer", row
        for row in self.db.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE embedder = ? AND (text_hash IN (SELECT text_hash "
                f"FROM responses WHERE system_id IN ({marks}) AND text_hash IS NOT NULL) OR text_hash IN "
                f"(SELECT value FROM json_each(?))) ORDER BY text_hash",
                [embedder, *system_ids, json.dumps(prompt_hashes)]):
            yield "vector", row
        if not scorers:
            return
        for row in self.db.execute(f"SELECT system_id, prompt_id, sample, scorer, score, error FROM scores "
                                   f"WHERE system_id IN ({marks}) AND scorer IN ({_marks(scorers)}) "
                                   f"ORDER BY system_id, prompt_id, sample, scorer", [*system_ids, *scorers]):
            yield "score", row


@dataclass
class MergeCounts:
    """Rows a merge added to the target store, per table."""
    systems: int
    prompts: int
    responses: int
    embeddings: int
    scores: int


class _Transaction:
    def __init__(self, store: Store):
        self.store = store

    def __enter__(self):
        self._execute("BEGIN")

    def __exit__(self, exc_type, *rest):
        if exc_type is None:
            self._execute("COMMIT")
            return
        try:
            self.store.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass    # the error already on its way says what went wrong; SQLite rolls back on close anyway

    def _execute(self, sql: str) -> None:
        try:
            self.store.db.execute(sql)
        except sqlite3.Error as err:
            raise store_error(err, self.store.path, self.store.timeout) or err from None


_BLANK = f"LENGTH(TRIM(r.text, {SQL_BLANKS})) = 0"


def _marks(values: list) -> str:
    return ",".join("?" * len(values))


def _position_range(positions: tuple[int | None, int | None] | None) -> tuple[str, list[int]]:
    """SQL (on prompts aliased p) and its bound values for first <= p.position < end; None bounds are open."""
    first, end = positions or (None, None)
    where, bounds = "", []
    if first is not None:
        where, bounds = where + " AND p.position >= ?", bounds + [int(first)]
    if end is not None:
        where, bounds = where + " AND p.position < ?", bounds + [int(end)]
    return where, bounds


def _with_text(system_ids: list[str]) -> str:
    """Responses (aliased r) of these systems that have text; binds the system ids."""
    return f"r.system_id IN ({_marks(system_ids)}) AND r.text IS NOT NULL"


def _group(prompt_id: str, rows: list[tuple], index: dict[str, int]) -> PromptGroup:
    return PromptGroup(
        prompt_id=prompt_id,
        systems=np.array([index[r[1]] for r in rows], dtype=np.int32),
        vectors=np.vstack([np.frombuffer(r[4], dtype=np.float32) for r in rows]),
        texts=[r[3] for r in rows],
        samples=np.array([r[2] for r in rows], dtype=np.int32),
    )
