"""The pair deciders of `equivalence: {method: judge | classifier}`, run by the score stage.

Both methods decide "do these two answers say the same thing?" pair by pair before analysis, which then
partitions each answer set with the stored verdicts (hivemind.analyze.equivalence_choice). This module walks
every (system, prompt) set by NoveltyBench's greedy rule (hivemind.score.pairs), deciding each compared pair
that has no stored verdict: short pairs by NoveltyBench's word-overlap rule (free), the rest by the judge
(hivemind.score.pair_judge) or the classifier (hivemind.score.pair_classifier). Verdicts are stored as they
come, under the method id `config.equivalence.verdict_method`; a re-run asks nothing already stored.
"""
from __future__ import annotations

import asyncio

from tqdm import tqdm

from hivemind.core.config import RunConfig
from hivemind.core.errors import HivemindError
from hivemind.score.pairs import AnswerSet, PairSummary, answer_sets, walk_set
from hivemind.store import Store

DECIDED = ("judge", "classifier")
SUMMARY_NAME = "equivalence"


def decides_pairs(config: RunConfig) -> bool:
    """Whether the score stage decides equivalence pairs for this run."""
    return config.equivalence.method in DECIDED


def decide_pairs(config: RunConfig, store: Store, system_ids: list[str], progress: bool = True) -> PairSummary:
    """Store a verdict for every pair the partition compares that has none; what was done, never raises
    for a decider that cannot run (its reason is in `stopped`)."""
    method = config.equivalence.verdict_method
    part = PairSummary(SUMMARY_NAME, method)
    cells = answer_sets(store, system_ids)
    part.sets = len(cells)
    known = store.verdicts(method, system_ids)
    decider = _Lazy(config, store, part)
    with tqdm(total=len(cells), desc=f"equivalence {config.equivalence.method}", unit="set",
              disable=not progress, dynamic_ncols=True) as bar:
        asyncio.run(_walk_all(cells, known, method, decider, store, part, bar))
    return part


class _Lazy:
    """The decider, built on the first pair that needs it: a re-run with every compared pair stored loads no
    model and checks no key."""

    def __init__(self, config: RunConfig, store: Store, part: PairSummary):
        self.config, self.store, self.part = config, store, part
        self.decider = None
        self.failed = False
        self.workers = config.equivalence.concurrency if config.equivalence.method == "judge" else 1

    @property
    def stopped(self) -> bool:
        stop = getattr(self.decider, "stop", None)
        return self.failed or (stop is not None and stop.is_set())

    async def decide(self, cell: AnswerSet, i: int, later: list[int]) -> dict[int, bool]:
        if self.decider is None and not self.failed:
            try:
                self.decider = _decider(self.config, self.store, self.part)
            except HivemindError as err:    # a missing key or model: said once, everything stored is kept
                self.part.stopped = str(err)
                self.failed = True
        if self.stopped:
            return {}
        return await self.decider.decide(cell, i, later)


def _decider(config: RunConfig, store: Store, part: PairSummary):
    if config.equivalence.method == "judge":
        from hivemind.score.pair_judge import PairJudge

        return PairJudge(config, store, part)
    from hivemind.score.pair_classifier import PairClassifier

    return PairClassifier(config, store, part)


async def _walk_all(cells: list[AnswerSet], known: dict, method: str, decider: _Lazy, store: Store,
                    part: PairSummary, bar) -> None:
    work = iter(cells)     # shared: each set is walked by one worker

    async def worker() -> None:
        for cell in work:
            if decider.stopped:
                part.unfinished += 1
                continue
            done = await walk_set(cell, known.get((cell.system_id, cell.prompt_id), {}), method, decider.decide,
                                  store, part)
            part.unfinished += not done
            bar.update(1)

    await asyncio.gather(*(worker() for _ in range(decider.workers)))
