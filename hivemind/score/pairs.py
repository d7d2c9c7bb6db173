"""The pair walk shared by the equivalence deciders (judge, classifier): which answer pairs to decide, in
which order, and the short-answer rule that decides some of them for free.

Analysis partitions each (system, prompt) answer set by NoveltyBench's greedy rule over the stored verdicts
and fails on a compared pair without one, so the deciders must store a verdict for EXACTLY the pairs that
rule compares: in sample order, the first unassigned answer opens a class and is compared with every later
unassigned answer; those judged the same join it. `walk_set` is that loop (the analysis kernel's
`greedy_partition`, which this stage cannot import: score sits below analyze), asking for the pairs of one
representative at a time, so a classifier batches them and a judge sends them at once. Stored verdicts are
read first: a killed run resumes and never decides a stored pair twice.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

from hivemind.core.short_answers import short_answer_same
from hivemind.score.outcome import Outcome
from hivemind.store import BLANKS, Store, Verdict

short_pair_same = short_answer_same     # the name the score stage's tests use: one rule, core.short_answers

SHORT_RAW = "short-answer rule"


@dataclass
class AnswerSet:
    """One (system, prompt) cell's real answers (non-blank text) in sample order: what analysis partitions."""
    system_id: str
    prompt_id: str
    prompt: str
    samples: list[int]
    texts: list[str]


def answer_sets(store: Store, system_ids: list[str]) -> list[AnswerSet]:
    """Every cell of these systems with two or more real answers (one answer has no pair), prompt order."""
    texts = store.answer_texts(system_ids)
    cells: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for (system_id, prompt_id, sample), text in texts.items():
        if text.strip(BLANKS):            # blank answers and failed requests are left out of partitions
            cells.setdefault((system_id, prompt_id), []).append((sample, text))
    order = {sid: i for i, sid in enumerate(system_ids)}
    out = []
    for prompt in store.prompts():
        for system_id in sorted((s for s, p in cells if p == prompt.id), key=order.__getitem__):
            answers = sorted(cells[(system_id, prompt.id)])
            if len(answers) >= 2:
                out.append(AnswerSet(system_id, prompt.id, prompt.text, [s for s, _ in answers],
                                     [t for _, t in answers]))
    return out


@dataclass
class PairSummary(Outcome):
    """What the equivalence decider did: an Outcome like a ScorerSummary's, so that the score stage reports
    and raises on it as on any scorer. `kind`: the verdicts' method id, e.g. "judge:openai/gpt-4o-mini"."""
    sets: int = 0                  # answer sets with two or more real answers
    stored: int = 0                # pairs already decided by an earlier run (not asked again)
    asked: int = 0                 # pairs decided now by the judge or classifier
    short: int = 0                 # pairs decided now by the short-answer rule (free)
    unreadable: int = 0            # judge replies without SAME/DIFFERENT twice: stored as different, counted
    unfinished: int = 0            # answer sets whose walk could not finish (see the counts above)
    notes: list[str] = field(default_factory=list)
    # failed_permanent: judge requests refused for good (e.g. 400), stored as different, counted;
    # failed_transient: still failing after every attempt, not stored (the set is unfinished; the next run retries)

    @property
    def scored(self) -> int:
        return self.asked + self.short

    @property
    def complete(self) -> bool:
        return not self.stopped and not self.stopped_for_cost and not self.unfinished

    def counts(self) -> list[str]:
        parts = [f"{self.name} ({self.kind}): {self.scored} pairs decided ({self.short} by the short-answer rule)"]
        if self.unreadable:
            parts.append(f"{self.unreadable} unreadable replies stored as 'different'")
        if self.failed_permanent:
            parts.append(f"{self.failed_permanent} refused requests stored as 'different'")
        return parts

    def done(self) -> list[str]:
        parts = [f"{self.stored} already stored, {self.sets} answer sets"]
        if self.unfinished:
            parts.append(f"{self.unfinished} sets unfinished")
        return parts


# decide(cell, representative index, later indices) -> {index: same} for the pairs it decided (stored by it);
# a pair left out could not be decided now, and the walk of that set stops there.
Decide = Callable[[AnswerSet, int, list[int]], Awaitable[dict[int, bool]]]


async def walk_set(cell: AnswerSet, known: dict[tuple[int, int], bool | None], method: str, decide: Decide,
                   store: Store, part: PairSummary) -> bool:
    """NoveltyBench's greedy partition of one set, deciding the pairs it compares that `known` (stored
    verdicts, keyed by sample numbers, earlier first) lacks. True when the set's every compared pair has a
    verdict now."""
    n = len(cell.texts)
    label = [-1] * n
    for i in range(n):
        if label[i] >= 0:
            continue
        label[i] = i
        later = [j for j in range(i + 1, n) if label[j] < 0]
        verdicts = {j: known.get((cell.samples[i], cell.samples[j])) for j in later}
        missing = [j for j, same in verdicts.items() if same is None]
        part.stored += len(later) - len(missing)
        if missing:
            missing = _decide_short(cell, i, missing, method, verdicts, store, part)
        if missing:
            decided = await decide(cell, i, missing)
            verdicts.update(decided)
            if len(decided) < len(missing):
                return False
        for j in later:
            if verdicts[j]:
                label[j] = i
    return True


def _decide_short(cell: AnswerSet, i: int, missing: list[int], method: str, verdicts: dict[int, bool | None],
                  store: Store, part: PairSummary) -> list[int]:
    """Decide the short pairs by NoveltyBench's word-overlap rule and store them; the rest stay missing."""
    ruled = []
    for j in missing:
        same = short_answer_same(cell.texts[i], cell.texts[j])
        if same is not None:
            verdicts[j] = same
            ruled.append(Verdict(cell.system_id, cell.prompt_id, cell.samples[i], cell.samples[j], method, same,
                                 raw=SHORT_RAW))
    if ruled:
        store.add_verdicts(ruled)
        part.short += len(ruled)
    return [j for j in missing if verdicts[j] is None]
