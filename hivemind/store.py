"""The store: one SQLite file per run (WAL), the single source of truth between stages.

Every response is committed the moment it arrives, so killing the collector at any point loses nothing
that was committed, and the next run asks only for what is missing. Responses are keyed by
(system identity, prompt id, sample index): the identity hashes model + api_base + params, so changed
settings never mix with old samples. Embeddings are cached by (embedder id, text hash): a text that
several systems produced is embedded once.
"""
from __future__ import annotations

import hashlib
import json
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


@dataclass
class PromptGroup:
    """All embedded responses to one prompt, ready for measurement.

    `systems[i]` is an index into the list of system ids the group was built for."""
    prompt_id: str
    systems: np.ndarray                      # int32, shape (n,)
    vectors: np.ndarray                      # float32, shape (n, d), rows L2-normalised
    texts: list[str] = field(default_factory=list)
    samples: np.ndarray | None = None        # int32, shape (n,)


class Store:
    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise HivemindError(f"{self.path}: no store here; run `hivemind collect` or `hivemind import` first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a killed process (the WAL is in the OS already); only a power
            # cut can drop the last transactions.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise HivemindError(f"{self.path}: unreadable store ({err}); restore it from a snapshot "
                                f"(`hivemind import`) or collect the run again") from None

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

    def iter_prompt_groups(self, embedder: str, system_ids: list[str]) -> Iterator[PromptGroup]:
        """Stream one PromptGroup per prompt, in prompt order: memory holds one prompt at a time.

        Responses without text (failed) or without a vector for `embedder` are left out."""
        index = {sid: i for i, sid in enumerate(system_ids)}
        marks = ",".join("?" * len(system_ids))
        cursor = self.db.execute(
            f"SELECT r.prompt_id, r.system_id, r.sample, r.text, e.vector FROM responses r "
            f"JOIN prompts p ON p.id = r.prompt_id "
            f"JOIN embeddings e ON e.embedder = ? AND e.text_hash = r.text_hash "
            f"WHERE r.system_id IN ({marks}) AND r.text IS NOT NULL "
            f"ORDER BY p.position, r.system_id, r.sample",
            [embedder, *system_ids],
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

    # Scores -------------------------------------------------------------------------------------
    def add_scores(self, scores: Iterable[Score]) -> None:
        """Insert or replace scores in one transaction (a re-score of the same key replaces it)."""
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO scores (system_id, prompt_id, sample, scorer, score, raw, error, created_at) "
                "VALUES (?,?,?,?,?,?,?,?)",
                ((s.system_id, s.prompt_id, s.sample, s.scorer, s.score, s.raw, s.error, now()) for s in scores))

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

    # Plumbing -----------------------------------------------------------------------------------
    def transaction(self):
        return _Transaction(self.db)

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


@dataclass
class MergeCounts:
    """Rows a merge added to the target store, per table."""
    systems: int
    prompts: int
    responses: int
    embeddings: int
    scores: int


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN")

    def __exit__(self, exc_type, *rest):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _group(prompt_id: str, rows: list[tuple], index: dict[str, int]) -> PromptGroup:
    return PromptGroup(
        prompt_id=prompt_id,
        systems=np.array([index[r[1]] for r in rows], dtype=np.int32),
        vectors=np.vstack([np.frombuffer(r[4], dtype=np.float32) for r in rows]),
        texts=[r[3] for r in rows],
        samples=np.array([r[2] for r in rows], dtype=np.int32),
    )
