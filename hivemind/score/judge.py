"""LM judge: any litellm model grades each answer on an absolute rubric (1-5 or 1-10), at temperature 0.

The rubric texts are files in hivemind/rubrics/ (they go into snapshots too). Parsing is strict: the
reply's last non-blank line must be `Score: N` with N a whole number inside the rubric's range. Anything
else is stored with its reply and an error "unparseable: ...", counted, and never guessed at; a re-run does
not ask again (at temperature 0 the judge would say the same). Requests go through collect's litellm call
(key from the environment, seed, no litellm retries) and hivemind.core.retry's backoff.
"""
from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path

from hivemind.core.config import RUBRICS, RunConfig, Scorer, System
from hivemind.core.errors import HivemindError
from hivemind.core.retry import GaveUp, PermanentError, RetryPolicy, call_with_retries
from hivemind.store import Answer, Score, Store

RUBRIC_DIR = Path(__file__).resolve().parents[1] / "rubrics"
DEFAULT_RUBRIC = "1-10"
SCORE_LINE = re.compile(r"score:\s*(\S+)", re.IGNORECASE)


def rubric_path(rubric: str | None) -> Path:
    return RUBRIC_DIR / f"absolute-{rubric or DEFAULT_RUBRIC}.txt"


def rubric_files(config: RunConfig) -> list[Path]:
    """The rubric files the run's judges use (for snapshots: the exact prompt text the scores came from),
    the equivalence judge's included."""
    files = {rubric_path(s.rubric) for s in config.scorers if s.kind == "judge"}
    if config.equivalence.method == "judge":
        files.add(RUBRIC_DIR / "equivalence-pair.txt")
    return sorted(files)


def rubric_range(rubric: str | None) -> tuple[int, int]:
    low, high = (rubric or DEFAULT_RUBRIC).split("-")
    return int(low), int(high)


def judge_prompt(template: str, answer: Answer) -> str:
    # Plain replacement, not str.format: prompts and answers are full of braces.
    return template.replace("{{prompt}}", answer.prompt).replace("{{answer}}", answer.text)


def parse_score(reply: str, low: int, high: int) -> tuple[float | None, str | None]:
    """(score, None) when the last non-blank line is `Score: N` with low <= N <= high, else (None, error)."""
    lines = [line.strip() for line in (reply or "").splitlines() if line.strip()]
    if not lines:
        return None, "unparseable: empty reply"
    last = lines[-1].strip("*_` ")   # markdown emphasis around the line is formatting, not content
    match = SCORE_LINE.fullmatch(last)
    if match is None:
        return None, f"unparseable: last line is not 'Score: N': {last[:80]!r}"
    token = match.group(1).strip("*_`.")
    if not token.isdigit():
        return None, f"unparseable: score {token[:20]!r} is not a whole number"
    value = int(token)
    if not low <= value <= high:
        return None, f"unparseable: score {value} outside {low}-{high}"
    return float(value), None


def judge_system(scorer: Scorer) -> System:
    """The judge as a collect System, so its call, key handling and provider check are collect's own."""
    params = {"temperature": 0, "max_tokens": 512, **scorer.params}
    return System(name=f"scorer {scorer.name}", model=scorer.model, api_base=scorer.api_base,
                  api_key_env=scorer.api_key_env, params=params, concurrency=scorer.concurrency)


def run_judge(config: RunConfig, scorer: Scorer, todo: list[Answer], store: Store, part, bar) -> None:
    from hivemind.collect.stage import _Request, check_systems

    system = judge_system(scorer)
    check_systems([system])          # unknown provider or missing key: before any request
    if not rubric_path(scorer.rubric).is_file():
        raise HivemindError(f"{rubric_path(scorer.rubric)}: rubric file missing from the installation")
    asyncio.run(_Judge(config, scorer, _Request(system, config), store, part, bar).run(todo))


class _Judge:
    def __init__(self, config: RunConfig, scorer: Scorer, request, store: Store, part, bar):
        self.config, self.scorer, self.request, self.store, self.part, self.bar = \
            config, scorer, request, store, part, bar
        self.template = rubric_path(scorer.rubric).read_text(encoding="utf-8")
        self.low, self.high = rubric_range(scorer.rubric)
        self.policy = RetryPolicy(config.max_attempts, config.retry_base_delay, config.retry_max_delay)
        self.spent = store.total_cost() + store.scoring_cost()   # max_cost covers collection and scoring
        self.stop = asyncio.Event()
        self.rng = random.Random(scorer.name)

    def _over_budget(self) -> bool:
        if self.config.max_cost is not None and self.spent >= self.config.max_cost:
            self.part.stopped_for_cost = True
            return True
        return False

    async def run(self, todo: list[Answer]) -> None:
        work = iter(todo)   # shared: each answer is taken by one worker
        await asyncio.gather(*(self.worker(work) for _ in range(self.scorer.concurrency)))

    async def worker(self, work) -> None:
        for answer in work:
            if self.stop.is_set() or self._over_budget():
                return
            await self.one(answer)

    async def one(self, answer: Answer) -> None:
        part, redact = self.part, self.request.redact
        text = judge_prompt(self.template, answer)

        def count_retry(_err: BaseException) -> None:
            part.retries += 1

        try:
            reply = await call_with_retries(lambda: self.request.send(text, 0), self.policy, self.rng, count_retry)
        except PermanentError as err:
            if err.fatal_for_system:   # key, model name: every other answer would fail the same way
                part.stopped = f"judge {self.scorer.model!r}: {redact(str(err))}"
                self.stop.set()
                return
            self.store.add_scores([Score(*answer.key, self.scorer.name, None, error=redact(str(err)))])
            part.failed_permanent += 1
            self.bar.update(1)
            return
        except GaveUp as err:
            part.failed_transient += 1
            part.last_transient = redact(str(err))
            self.bar.update(1)
            if part.scored + part.unparseable == 0 and part.failed_transient >= self.scorer.concurrency:
                # Never answered once: unreachable, not flaky. Stop rather than retry every answer.
                part.stopped = (f"judge {self.scorer.model!r} at {self.scorer.api_base or 'provider default'} "
                                f"is unreachable: {part.last_transient}")
                self.stop.set()
            return
        content = reply.choices[0].message.content or ""
        cost = (getattr(reply, "_hidden_params", None) or {}).get("response_cost")
        value, error = parse_score(content, self.low, self.high)
        self.store.add_scores([Score(*answer.key, self.scorer.name, value, raw=content, error=error, cost=cost)])
        if cost:
            self.spent += cost
            part.cost += cost
        if error:
            part.unparseable += 1
        else:
            part.scored += 1
        self.bar.update(1)
