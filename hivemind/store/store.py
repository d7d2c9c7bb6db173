"""The store: one SQLite file per run (WAL), the single source of truth between stages.

Every response is committed the moment it arrives, so killing the collector at any point loses nothing
that was committed, and the next run asks only for what is missing. Responses are keyed by
(system identity, prompt id, sample index): the identity hashes model + api_base + params, so changed
settings never mix with old samples. Embeddings are cached by (embedder id, text hash): a text that
several systems produced is embedded once. The tables are declared in schema.py.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hivemind.core.errors import HivemindError
from hivemind.store import schema
from hivemind.store.errors import LOCK_TIMEOUT_S, check_folder, guard_public_methods, read_only_reason, store_error
from hivemind.store.reads import VectorReads, marks
from hivemind.store.records import Answer, Prompt, Response, Score, Verdict, now, text_hash


@guard_public_methods
class Store(VectorReads):
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
            # by URI, so that merge can attach its sources read-only (`file:...?mode=ro`)
            self.db = sqlite3.connect(self.path.resolve().as_uri(), uri=True, isolation_level=None,
                                      timeout=timeout)
        except (OSError, sqlite3.Error) as err:
            raise store_error(err, self.path, timeout) or err from None
        try:
            schema.check_file(self.db, self.path)     # a foreign or newer file is refused before any write
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a killed process (the WAL is in the OS already); only a power
            # cut can drop the last transactions.
            self.db.execute("PRAGMA synchronous=NORMAL")
            schema.upgrade(self.db, self.path)
        except BaseException as err:
            self.db.close()
            if isinstance(err, sqlite3.Error):
                raise store_error(err, self.path, timeout) or err from None
            raise

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

    def _probe(self, db: sqlite3.Connection) -> sqlite3.Connection:
        """Check the file is a store this code can read, let an older one read as current (TEMP tables only,
        the file is not changed) and make the connection read-only, so an unusable file fails here."""
        try:
            schema.read_through(db, self.path)
            db.execute("PRAGMA query_only = ON")
        except BaseException:
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
            f"JOIN prompts p ON p.id = r.prompt_id WHERE r.system_id IN ({marks(system_ids)}) "
            f"ORDER BY p.position, r.system_id, r.sample", system_ids).fetchall()

    def scoring_cost(self) -> float:
        """USD spent on scores and on equivalence verdicts (both count against max_cost)."""
        scores = self.db.execute("SELECT COALESCE(SUM(cost), 0) FROM scores").fetchone()[0]
        verdicts = self.db.execute("SELECT COALESCE(SUM(cost), 0) FROM equivalence_verdicts").fetchone()[0]
        return float(scores) + float(verdicts)

    # Equivalence verdicts ---------------------------------------------------------------------------
    def add_verdicts(self, verdicts: Iterable[Verdict]) -> None:
        """Insert or replace pair verdicts in one transaction (the pair is stored earlier sample first)."""
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO equivalence_verdicts (system_id, prompt_id, sample_a, sample_b, method, same, "
                "probability, raw, error, cost, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                ((v.system_id, v.prompt_id, min(v.sample_a, v.sample_b), max(v.sample_a, v.sample_b), v.method,
                  None if v.same is None else int(v.same), v.probability, v.raw, v.error, v.cost, now())
                 for v in verdicts))

    def verdicts(self, method: str, system_ids: list[str] | None = None
                 ) -> dict[tuple[str, str], dict[tuple[int, int], bool | None]]:
        """(system id, prompt id) -> {(earlier sample, later sample): same (None: unreadable)} for one method."""
        sql = "SELECT system_id, prompt_id, sample_a, sample_b, same FROM equivalence_verdicts WHERE method = ?"
        args: list = [method]
        if system_ids is not None:
            sql += f" AND system_id IN ({','.join('?' * len(system_ids))})"
            args += system_ids
        out: dict[tuple[str, str], dict[tuple[int, int], bool | None]] = {}
        for system_id, prompt_id, a, b, same in self.db.execute(sql, args):
            out.setdefault((system_id, prompt_id), {})[(a, b)] = None if same is None else bool(same)
        return out

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
            f"WHERE system_id IN ({marks(system_ids)}) GROUP BY system_id", system_ids)
        for sid, answers, errors, truncated, cost in rows:
            outcomes[sid] = (int(answers or 0), int(errors or 0), int(truncated or 0), float(cost or 0.0))
        return outcomes

    # Reasoning text of reasoning models, kept apart from the answer that gets embedded -----------------
    def add_reasoning(self, system_id: str, prompt_id: str, sample: int, text: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO reasoning (system_id, prompt_id, sample, text) VALUES (?,?,?,?)",
                        (system_id, prompt_id, sample, text))

    def reasoning(self, system_id: str, prompt_id: str, sample: int) -> str | None:
        row = self.db.execute("SELECT text FROM reasoning WHERE system_id = ? AND prompt_id = ? AND sample = ?",
                              (system_id, prompt_id, sample)).fetchone()
        return row[0] if row else None

    # Prompt categories assigned by an LM classifier (`hivemind classify`), cached per classifier --------
    def add_prompt_label(self, prompt_id: str, classifier: str, label: str | None, raw: str | None,
                         error: str | None) -> None:
        self.db.execute("INSERT OR REPLACE INTO prompt_labels (prompt_id, classifier, label, raw, error) "
                        "VALUES (?,?,?,?,?)", (prompt_id, classifier, label, raw, error))

    def labelled_prompts(self, classifier: str) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT prompt_id FROM prompt_labels WHERE classifier = ?",
                                                  (classifier,))}

    def prompt_labels(self) -> dict[str, str]:
        """{prompt id: label} from the classifier, the most recent classifier's label where several ran."""
        rows = self.db.execute("SELECT prompt_id, label FROM prompt_labels WHERE label IS NOT NULL ORDER BY rowid")
        return {pid: label for pid, label in rows}

    # Merging stores collected on several machines (hivemind merge) -------------------------------
    def merge_stores(self, paths: list[Path]) -> "MergeCounts":
        """Copy what the stores at `paths` have and this one lacks, in one transaction (see merge.py)."""
        from hivemind.store.merge import merge_stores

        return merge_stores(self, paths)


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
