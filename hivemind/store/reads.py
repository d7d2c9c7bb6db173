"""The store's reads of vectors and answers for the embed stage, the analysis, the report and snapshots.

A mixin of Store (store.py), kept apart only to keep each module short: it expects `self.db`, `self.path`
and `self.prompts()`.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import numpy as np

from hivemind.store.errors import KEYS_PER_QUERY, guard_public_methods
from hivemind.store.records import BLANKS, SQL_BLANKS, PromptGroup, text_hash


@guard_public_methods
class VectorReads:
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
        prompts for a distributed analysis (hivemind.engines.ray)."""
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

    # Every outcome of every request, failures included (the quality-gated metrics, hivemind.analyze.stage) ------
    def iter_answer_groups(self, embedder: str, system_ids: list[str],
                           positions: tuple[int | None, int | None] | None = None) -> Iterator[PromptGroup]:
        """Like iter_prompt_groups, but with every stored outcome of these systems, failures included: an
        embedded answer, a blank answer (empty or whitespace-only text, embedded or not) and a request that
        failed for good (text NULL, error set). A blank or failed row has text "" and a zero vector, so a
        prompt whose every answer failed still yields its group. A non-blank answer without a vector for
        `embedder` (not embedded yet) is left out, as iter_prompt_groups leaves it out."""
        index = {sid: i for i, sid in enumerate(system_ids)}
        where, bounds = _position_range(positions)
        probe = self.db.execute("SELECT vector FROM embeddings WHERE embedder = ? LIMIT 1", (embedder,)).fetchone()
        zero = bytes(len(probe[0])) if probe else b""      # a zero vector of the embedder's dimension
        cursor = self.db.execute(
            f"SELECT r.prompt_id, r.system_id, r.sample, r.text, e.vector FROM responses r "
            f"JOIN prompts p ON p.id = r.prompt_id "
            f"LEFT JOIN embeddings e ON e.embedder = ? AND e.text_hash = r.text_hash "
            f"WHERE r.system_id IN ({marks(system_ids)}) AND (r.text IS NOT NULL OR r.error IS NOT NULL){where} "
            f"ORDER BY p.position, r.system_id, r.sample",
            [embedder, *system_ids, *bounds])
        current, rows = None, []
        for prompt_id, system_id, sample, text, vector in cursor:
            failed = text is None or not text.strip(BLANKS)
            if vector is None and not failed:
                continue
            if prompt_id != current and rows:
                yield _group(current, rows, index)
                rows = []
            current = prompt_id
            rows.append((prompt_id, system_id, sample, "" if failed else text, zero if failed else vector))
        if rows:
            yield _group(current, rows, index)


    # The content fingerprint (hivemind.results.fingerprint): what an analysis read, as ordered rows ---------------
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
        in_systems = marks(system_ids)
        for row in self.db.execute(f"SELECT system_id, prompt_id, sample, text_hash, error FROM responses "
                                   f"WHERE system_id IN ({in_systems}) ORDER BY system_id, prompt_id, sample",
                                   system_ids):
            yield "answer", row
        for row in self.db.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE embedder = ? AND (text_hash IN (SELECT text_hash "
                f"FROM responses WHERE system_id IN ({in_systems}) AND text_hash IS NOT NULL) OR text_hash IN "
                f"(SELECT value FROM json_each(?))) ORDER BY text_hash",
                [embedder, *system_ids, json.dumps(prompt_hashes)]):
            yield "vector", row
        if not scorers:
            return
        for row in self.db.execute(f"SELECT system_id, prompt_id, sample, scorer, score, error FROM scores "
                                   f"WHERE system_id IN ({in_systems}) AND scorer IN ({marks(scorers)}) "
                                   f"ORDER BY system_id, prompt_id, sample, scorer", [*system_ids, *scorers]):
            yield "score", row

    # Reads for a distributed analysis (hivemind.engines.ray) ---------------------------------------
    def prompt_group_sizes(self, embedder: str, system_ids: list[str]) -> list[tuple[str, int, int]]:
        """(prompt id, position, answers) per prompt, in prompt order: the size of each prompt's group from
        iter_prompt_groups once blank answers are dropped (non-blank, embedded answers of these systems).
        Prompts with none are left out, as analysis skips them."""
        return list(self.db.execute(
            f"SELECT r.prompt_id, p.position, COUNT(*) FROM responses r JOIN prompts p ON p.id = r.prompt_id "
            f"JOIN embeddings e ON e.embedder = ? AND e.text_hash = r.text_hash "
            f"WHERE {with_text(system_ids)} AND NOT {_BLANK} GROUP BY r.prompt_id ORDER BY p.position",
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
        found: set[str] = set()
        for start in range(0, len(hashes), KEYS_PER_QUERY):
            batch = hashes[start:start + KEYS_PER_QUERY]
            found.update(h for (h,) in self.db.execute(
                f"SELECT text_hash FROM embedding_chunks WHERE embedder = ? AND text_hash IN ({marks(batch)})",
                [embedder, *batch]))
        return found

    # Chunked embeddings (embed stage) ----------------------------------------------------------
    # How many windows each embedded text needed, beside its vector: a text longer than the embedder's
    # window is embedded in chunks and pooled (embed/stage.py), and the report says how often that happened.
    def texts_without_chunk_counts(self, embedder: str, system_ids: list[str]) -> list[tuple[str, str]]:
        """Distinct (hash, text) pairs to embed: these systems' answers and every prompt text, with no chunk
        count yet for `embedder`. A vector stored before chunk counts existed (maybe truncated) is included."""
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
        return dict(self.db.execute("SELECT text_hash, chunks FROM embedding_chunks WHERE embedder = ?", (embedder,)))

    def chunk_counts_by_system(self, system_ids: list[str]) -> list[tuple]:
        """Per (embedder, system): answers with a chunk count, how many needed > 1 window, the most windows
        and the most tokens of one answer. Counts answers, not distinct texts."""
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
            f"SELECT system_id, COUNT(*), SUM({_BLANK}) FROM responses r WHERE {with_text(system_ids)} "
            f"GROUP BY system_id", system_ids)
        for system_id, n, n_blank in rows:
            counts[system_id] = (n, n_blank or 0)
        return counts

    def count_not_embedded(self, embedder: str, system_ids: list[str]) -> int:
        """Non-blank responses of these systems that have no vector for `embedder` yet."""
        return self.db.execute(
            f"SELECT COUNT(*) FROM responses r LEFT JOIN embeddings e ON e.embedder = ? AND e.text_hash = r.text_hash "
            f"WHERE {with_text(system_ids)} AND NOT {_BLANK} AND e.text_hash IS NULL",
            [embedder, *system_ids]).fetchone()[0]

    def max_samples_per_prompt(self, system_ids: list[str]) -> dict[str, int]:
        """Per system id, the most non-blank samples it has for any one prompt (0 when it has none)."""
        most = dict.fromkeys(system_ids, 0)
        rows = self.db.execute(
            f"SELECT system_id, MAX(c) FROM (SELECT r.system_id, COUNT(*) AS c FROM responses r "
            f"WHERE {with_text(system_ids)} AND NOT {_BLANK} GROUP BY r.system_id, r.prompt_id) GROUP BY system_id",
            system_ids)
        for system_id, m in rows:
            most[system_id] = m
        return most

    def n_prompts_with_text(self, system_ids: list[str]) -> int:
        """How many prompts at least one of these systems answered with text (blank included)."""
        return self.db.execute(f"SELECT COUNT(DISTINCT prompt_id) FROM responses r WHERE {with_text(system_ids)}",
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
                f"AND e.text_hash = r.text_hash WHERE r.prompt_id IN ({marks(batch)}) AND {with_text(system_ids)} "
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
        rows = self.db.execute(
            f"SELECT e.text_hash, e.vector, c.chunks, c.tokens FROM embeddings e LEFT JOIN embedding_chunks c "
            f"ON c.embedder = e.embedder AND c.text_hash = e.text_hash WHERE e.embedder = ? AND (e.text_hash IN "
            f"(SELECT DISTINCT text_hash FROM responses WHERE system_id IN ({marks(system_ids)}) "
            f"AND text_hash IS NOT NULL) OR e.text_hash IN (SELECT value FROM json_each(?))) ORDER BY e.text_hash",
            [embedder, *system_ids, json.dumps(prompt_hashes)])
        hashes, vectors, chunks, tokens = [], [], [], []
        for text_hash_, vector, n_chunks, n_tokens in rows:
            hashes.append(text_hash_)
            vectors.append(np.frombuffer(vector, dtype=np.float32))
            chunks.append(n_chunks)
            tokens.append(n_tokens)
        return hashes, vectors, chunks, tokens

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


_BLANK = f"LENGTH(TRIM(r.text, {SQL_BLANKS})) = 0"


def marks(values: list) -> str:
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


def with_text(system_ids: list[str]) -> str:
    """Responses (aliased r) of these systems that have text; binds the system ids."""
    return f"r.system_id IN ({marks(system_ids)}) AND r.text IS NOT NULL"


def _group(prompt_id: str, rows: list[tuple], index: dict[str, int]) -> PromptGroup:
    return PromptGroup(
        prompt_id=prompt_id,
        systems=np.array([index[r[1]] for r in rows], dtype=np.int32),
        vectors=np.vstack([np.frombuffer(r[4], dtype=np.float32) for r in rows]),
        texts=[r[3] for r in rows],
        samples=np.array([r[2] for r in rows], dtype=np.int32),
    )
