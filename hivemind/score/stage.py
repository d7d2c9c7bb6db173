"""Score: give every stored answer a quality score per configured scorer (`scorers:` in the config).

Scores are stored keyed by (system, prompt, sample, scorer), higher is better for every scorer. Like
collection, only answers with no row for a scorer are scored, so a re-run sends no request and computes
nothing, and a killed run resumes where it stopped (each answer or small batch is committed at once).
A scorer that cannot run (unreachable judge, missing key, reward model that cannot load offline) stops with
its reason; the other scorers still run, everything stored is kept, and analysis works without it.

Kinds (one module each): judge (LM judge through litellm), perplexity (mean answer log-probability under a
local llama.cpp model), reward (transformers sequence-classification model), relevance (answer-prompt
cosine under the run's embedder), fluency (word order from the text alone: the default offline gate).
`imported` scores come in through `hivemind import --scores`.

With `equivalence: {method: judge | classifier}`, the stage also decides the answer pairs the partition of
distinct ideas compares (hivemind.score.equivalence_pairs), when no `--scorer` is named; its summary is the
entry "equivalence", and a run with no scorers at all still runs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tqdm import tqdm

from hivemind.core.config import RunConfig, Scorer
from hivemind.core.errors import HivemindError
from hivemind.score.outcome import Outcome
from hivemind.store import Answer, Store
from hivemind.store.run import Run


@dataclass
class ScorerSummary(Outcome):
    todo: int = 0                 # answers with no row for this scorer at the start
    skipped: int = 0              # answers that already had one
    scored: int = 0               # stored with a score
    unparseable: int = 0          # judge replies without a valid `Score: N`: stored with an error, counted
    truncated: int = 0            # answers longer than the scorer's window, scored on their first part
    unjudged: int = 0             # stored with a NULL score and no error (fluency: too short to judge)

    def counts(self) -> list[str]:
        parts = [f"{self.name} ({self.kind}): {self.scored} scored"]
        if self.unparseable:
            parts.append(f"{self.unparseable} unparseable (stored with the reply)")
        if self.failed_permanent:
            parts.append(f"{self.failed_permanent} stored as errors")
        return parts

    def done(self) -> list[str]:
        parts = []
        if self.unjudged:
            parts.append(f"{self.unjudged} too short to judge (NULL: gated by the other scorers)")
        if self.truncated:
            parts.append(f"{self.truncated} read in part (longer than max_tokens or the context window)")
        return parts + [f"{self.skipped} already scored"]


@dataclass
class ScoreSummary:
    scorers: dict[str, ScorerSummary] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(part.complete for part in self.scorers.values())

    @property
    def scored(self) -> int:
        return sum(part.scored for part in self.scorers.values())

    def text(self) -> str:
        return "\n".join(part.line() for part in self.scorers.values())


def score_run(run: Run | RunConfig, scorers: list[str] | None = None, progress: bool = True,
              raise_if_incomplete: bool = True, system_ids: list[str] | None = None) -> ScoreSummary:
    """Score what is missing for `scorers` (names; default every computed scorer of the config), for the
    answers of `system_ids` (default the config's systems; analyze --controls passes its control systems).

    With raise_if_incomplete (the CLI), a scorer that stopped or left answers unscored raises a HivemindError
    after the others ran; the pipeline passes False and reads ScoreSummary.complete / text()."""
    config = Run.config_of(run)
    deciding, chosen = scoring_plan(config, scorers)
    system_ids = system_ids or [s.identity for s in config.systems]
    summary = ScoreSummary()
    with Run.of(run) as run:
        store = run.store()
        answers = count_answers(store, config, system_ids)
        if deciding:
            decide_equivalence(config, store, system_ids, summary, progress)
        for scorer in chosen:
            todo = store.answers_to_score(scorer.name, system_ids)
            part = ScorerSummary(scorer.name, scorer.kind, todo=len(todo), skipped=answers - len(todo))
            summary.scorers[scorer.name] = part
            if todo:
                try:
                    _score(config, scorer, todo, store, part, progress)
                except HivemindError as err:   # this scorer cannot run; the others still do
                    part.stopped = str(err)
    if raise_if_incomplete:
        check_complete(config, summary)
    return summary


def check_complete(config: RunConfig, summary: ScoreSummary) -> None:
    """Raise, after every scorer ran, when one stopped or left answers unscored (the CLI's contract; every
    engine's)."""
    from hivemind.score.equivalence_pairs import SUMMARY_NAME

    if summary.complete:
        return
    broken = [part for part in summary.scorers.values() if not part.complete]
    if len(broken) == 1 and broken[0].name == SUMMARY_NAME and broken[0].stopped and not broken[0].scored:
        raise HivemindError(broken[0].stopped)    # e.g. the classifier is not on disk: one line
    raise HivemindError(f"scoring of {config.name!r} is incomplete (every score stored so far is kept in "
                        f"{config.store_path}; analysis works without the missing ones):\n" + summary.text())


def scoring_plan(config: RunConfig, scorers: list[str] | None) -> tuple[bool, list[Scorer]]:
    """(whether the equivalence pairs are decided, the scorers to run): every engine scores by this plan.
    `--scorer NAME` runs that scorer only; a run deciding pairs with no scorers at all still decides them."""
    from hivemind.score.equivalence_pairs import decides_pairs

    deciding = scorers is None and decides_pairs(config)
    return deciding, [] if deciding and not config.scorers else _choose(config, scorers)


def decide_equivalence(config: RunConfig, store: Store, system_ids: list[str], summary: ScoreSummary,
                       progress: bool) -> None:
    """The pairs the configured judge or classifier decides (score.equivalence_pairs), in this process on
    every engine (a judge is an API; the classifier a batch of pairs per set), as the summary's entry."""
    from hivemind.score.equivalence_pairs import SUMMARY_NAME, decide_pairs

    summary.scorers[SUMMARY_NAME] = decide_pairs(config, store, system_ids, progress)


def count_answers(store: Store, config: RunConfig, system_ids: list[str]) -> int:
    """Answers with text to score (every engine); none at all is an error saying what to run."""
    answers = store.count_responses(system_ids, with_text=True)
    if answers == 0:
        raise HivemindError(f"run {config.name!r} has no stored answers to score; "
                            f"run `hivemind collect` or `hivemind import` first")
    return answers


def _choose(config: RunConfig, names: list[str] | None) -> list[Scorer]:
    if not config.scorers:
        raise HivemindError(f"run {config.name!r} has no scorers; add a `scorers:` list to its config, e.g. "
                            f"`scorers: [{{name: logprob, kind: perplexity}}]`")
    if not names:
        return [s for s in config.scorers if s.kind != "imported"]
    chosen = [config.scorer(name) for name in names]
    for scorer in chosen:
        if scorer.kind == "imported":
            raise HivemindError(f"scorer {scorer.name!r} is imported, not computed: bring its scores with "
                                f"`hivemind import --scores FILE --name {config.name} --scorer {scorer.name}`")
    return chosen


def _score(config: RunConfig, scorer: Scorer, todo: list[Answer], store: Store, part: ScorerSummary,
           progress: bool) -> None:
    with tqdm(total=len(todo), desc=f"score {scorer.name}", unit="answer", disable=not progress,
              dynamic_ncols=True) as bar:
        if scorer.kind == "judge":
            from hivemind.score.judge import run_judge

            run_judge(config, scorer, todo, store, part, bar)
            return
        backend = load_backend(config, scorer, store, progress)
        for start in range(0, len(todo), backend.batch):
            chunk = todo[start:start + backend.batch]
            scores = backend.score(chunk)
            store.add_scores(scores)      # committed per batch: a kill loses at most one batch
            part.scored += sum(s.score is not None for s in scores)
            part.failed_permanent += sum(s.score is None and s.error is not None for s in scores)
            part.unjudged += sum(s.score is None and s.error is None for s in scores)
            bar.update(len(chunk))
        part.truncated = getattr(backend, "truncated", 0)


def load_backend(config: RunConfig, scorer: Scorer, store: Store, progress: bool = False):
    """A local scorer: `.batch` (answers per commit) and `.score(list[Answer]) -> list[Score]`."""
    if scorer.kind == "perplexity":
        from hivemind.score.perplexity import LogProbScorer

        return LogProbScorer(scorer)
    if scorer.kind == "reward":
        from hivemind.score.reward import RewardScorer

        return RewardScorer(scorer)
    if scorer.kind == "fluency":
        from hivemind.score.fluency import FluencyScorer

        return FluencyScorer(scorer)
    if scorer.kind == "relevance":
        from hivemind.score.relevance import RelevanceScorer

        return RelevanceScorer(config, scorer, store, progress)
    raise HivemindError(f"scorer {scorer.name!r}: kind {scorer.kind!r} is not computed here")
