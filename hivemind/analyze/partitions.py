"""Partitions made once and read again: by a second process while the first pass runs (PartitionsAhead), and
by the gate-by-scorer pass after the diversity pass (KnownPartitions).

Which answers say the same thing does not depend on anything the first pass measures when the run's
equivalence is the learned pair model: not the floor, the relevance line or the gate (every real answer is
partitioned; the gate only decides which of them count). The learned partition is the dearest part of
analysis (about 0.7 s a prompt at 25 systems x 50 samples: the pair features of 1,250 answers, and the pooled
partition's ~200,000 compared pairs), so on a machine with a second core a worker process partitions every
prompt while this one measures similarity, neighbours and phrases; the diversity pass then reads its classes
instead of partitioning again. The worker runs the same accumulator over the same answers in the same order,
so the classes are the same (a test compares every table with and without it).
"""
from __future__ import annotations

import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from hivemind.analyze.diversity import DiversityAccumulator
from hivemind.analyze.equivalence import Equivalence, LearnedEquivalence
from hivemind.store import PromptGroup, Store
from hivemind.store.records import is_empty

# Below this many answers the worker's start (a fresh interpreter importing numpy, pandas and scipy: ~2 s)
# costs more than it saves.
AHEAD_MIN_ANSWERS = 20_000


def failed_answers(group: PromptGroup) -> np.ndarray:
    """Per answer: True for a blank answer (empty or whitespace) or a failed request (no text)."""
    return np.array([is_empty(t) for t in group.texts], dtype=bool) if group.texts else \
        np.zeros(len(group.systems), dtype=bool)


class KnownPartitions:
    """An equivalence that answers with partitions made before (DiversityStats.labels, and each prompt's pooled
    count when known): for a pass over the same answers under another gate, or after PartitionsAhead. `id` is
    the method that made them, so the tables name it."""

    def __init__(self, labels: list[tuple[str, int, int, int]], system_ids: list[str], id: str = "known",
                 pooled: dict[str, float] | None = None):
        self.id = id
        self.cells: dict[tuple[str, int], dict[int, int]] = {}
        self.system_index = {sid: i for i, sid in enumerate(system_ids)}
        self.pooled = pooled
        for prompt_id, system, sample, cls in labels:
            self.cells.setdefault((prompt_id, system), {})[sample] = cls

    def partition(self, x, texts, keys=None, prompt: str = "") -> np.ndarray:
        """keys (system id, prompt id, sample) of one set's real answers -> their classes, as the earlier pass
        numbered them (real answers first, so the same numbers)."""
        out = []
        for system_id, prompt_id, sample in keys:
            out.append(self.cells[(prompt_id, self.system_index[system_id])][sample])
        return np.array(out, dtype=np.int64)

    def pooled_ideas(self, prompt_id: str) -> float:
        """The pooled view's distinct ideas of one prompt as the earlier pass counted them."""
        if self.pooled is None:
            raise LookupError("these partitions were made without the pooled view")
        return self.pooled[prompt_id]


def partition_run(store_path: str, embedder: str, system_ids: list[str], n_real: int,
                  equivalence: Equivalence) -> tuple[list[tuple[str, int, int, int]], dict[str, float]]:
    """Every prompt's partitions (the diversity pass's labels and pooled counts), with no gate: what the worker
    runs. Module-level, so a fresh process can import it."""
    with Store.open_readonly(store_path) as store:
        prompts = {p.id: p.text for p in store.prompts()}
        acc = DiversityAccumulator(len(system_ids), n_real, equivalence=equivalence, system_ids=list(system_ids),
                                   prompt_texts=prompts)
        for group in store.iter_answer_groups(embedder, system_ids):
            failed = failed_answers(group)
            acc.add(group, ~failed, failed)
    stats = acc.finish()
    return stats.labels, dict(zip(stats.prompt_ids, stats.pooled["pooled_distinct_ideas"].tolist()))


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass
class PartitionsAhead:
    """The run's partitions under way in a worker process (start), read by the diversity pass (known). A
    context: leaving it stops a worker whose partitions nobody read (the first pass failed, or was
    interrupted). Started without a worker, `known` gives the equivalence itself."""
    equivalence: Equivalence | None = None
    system_ids: list[str] = field(default_factory=list)
    future: Future | None = None
    pool: ProcessPoolExecutor | None = field(default=None, repr=False)

    @classmethod
    def start(cls, store: Store, embedder: str, system_ids: list[str], n_real: int, equivalence: Equivalence,
              force: bool | None = None) -> PartitionsAhead:
        """Start partitioning when it pays: a learned equivalence, a second core, AHEAD_MIN_ANSWERS answers or
        more (`force` True / False overrides the last two)."""
        if not isinstance(equivalence, LearnedEquivalence):
            return cls()
        if force is None:
            force = usable_cores() >= 2 and store.count_responses(system_ids) >= AHEAD_MIN_ANSWERS
        if not force:
            return cls()
        # spawn, not fork: this process may hold threads (BLAS, tokenizers) that a fork would copy mid-state
        pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        future = pool.submit(partition_run, str(Path(store.path).resolve()), embedder, list(system_ids), n_real,
                             equivalence)
        return cls(equivalence, list(system_ids), future, pool)

    def known(self, equivalence: Equivalence) -> Equivalence:
        """The equivalence the diversity pass uses: the worker's partitions when it made them with this same
        method (its error raised here), else `equivalence` itself (no worker, another method, or a worker
        that died without an answer: killed, out of memory)."""
        if self.future is None or self.equivalence.id != equivalence.id:
            return equivalence
        try:
            labels, pooled = self.future.result()
        except BrokenProcessPool:
            return equivalence
        finally:
            self.pool.shutdown(wait=True)
        return KnownPartitions(labels, self.system_ids, id=equivalence.id, pooled=pooled)

    def __enter__(self) -> PartitionsAhead:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is None:
            return
        for process in list((getattr(self.pool, "_processes", None) or {}).values()):   # no public kill before 3.14
            process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)
