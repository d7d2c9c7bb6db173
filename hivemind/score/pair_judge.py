"""Equivalence by an LM judge: any litellm model is shown the request and two of its answers and says SAME
or DIFFERENT (rubric: hivemind/rubrics/equivalence-pair.txt), at temperature 0.

The call is the score judge's (collect's litellm request: key from the environment via `api_key_env`, seed,
no litellm retries; hivemind.core.retry's backoff; litellm's response cost). Every verdict is stored as it
arrives, with the reply and its cost, so a killed run loses at most the requests in flight.

A reply without a readable SAME/DIFFERENT is asked once more (with another seed); unreadable again, it is
stored as "different" with the error and counted. Not NULL: analysis needs a verdict for every compared pair,
and NoveltyBench's own LM equivalence check answers "not equivalent" on any failure, so a run stays
comparable with it. A request the provider refuses for good (400, e.g. the pair is longer than the model's
context) is stored the same way. Transient failures are not stored: the set's walk stops, the next run asks.
Spending counts against `max_cost` with collection and scoring (checked before every request).
"""
from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path

from hivemind.core.config import RunConfig, System
from hivemind.core.errors import HivemindError
from hivemind.core.retry import GaveUp, PermanentError, RetryPolicy, call_with_retries
from hivemind.score.pairs import AnswerSet, PairSummary
from hivemind.store import Store, Verdict

RUBRIC = Path(__file__).resolve().parents[1] / "rubrics" / "equivalence-pair.txt"
_WORD = re.compile(r"\b(same|different)\b", re.IGNORECASE)


def pair_prompt(template: str, prompt: str, a: str, b: str) -> str:
    # Plain replacement, not str.format: prompts and answers are full of braces. The answers go in last so
    # that a "{{answer_b}}" inside answer A is not replaced.
    return template.replace("{{prompt}}", prompt).replace("{{answer_b}}", b).replace("{{answer_a}}", a)


def parse_verdict(reply: str) -> tuple[bool | None, str | None]:
    """(same, None) when the last non-blank line names exactly one of SAME / DIFFERENT, else (None, error)."""
    lines = [line.strip() for line in (reply or "").splitlines() if line.strip()]
    if not lines:
        return None, "unreadable: empty reply"
    words = {w.lower() for w in _WORD.findall(lines[-1])}
    if len(words) != 1:
        return None, f"unreadable: last line names neither or both of SAME/DIFFERENT: {lines[-1][:80]!r}"
    return words == {"same"}, None


def judge_endpoint(config: RunConfig) -> System:
    """The judge as a collect System, so its call, key handling and provider check are collect's own."""
    eq = config.equivalence
    params = {"temperature": 0, "max_tokens": 16, **eq.params}
    return System(name="equivalence judge", model=eq.model, api_base=eq.api_base, api_key_env=eq.api_key_env,
                  params=params, concurrency=eq.concurrency)


class PairJudge:
    """`decide` for the pair walk: asks the pairs of one representative at once, `concurrency` in flight."""

    def __init__(self, config: RunConfig, store: Store, part: PairSummary):
        from hivemind.collect.stage import _Request, check_systems

        system = judge_endpoint(config)
        try:
            check_systems([system])          # unknown provider or missing key: before any request
        except HivemindError as err:         # said of the config's `equivalence:`, not of a system
            raise HivemindError(str(err).replace(f"system {system.name!r}", "equivalence judge (`equivalence:`)")
                                ) from None
        if not RUBRIC.is_file():
            raise HivemindError(f"{RUBRIC}: rubric file missing from the installation")
        self.config, self.store, self.part = config, store, part
        self.method = config.equivalence.verdict_method
        self.request = _Request(system, config)
        self.template = RUBRIC.read_text(encoding="utf-8")
        self.policy = RetryPolicy(config.max_attempts, config.retry_base_delay, config.retry_max_delay)
        self.spent = store.total_cost() + store.scoring_cost()   # max_cost covers collection and scoring
        self.slots = asyncio.Semaphore(config.equivalence.concurrency)
        self.stop = asyncio.Event()
        self.rng = random.Random(self.method)

    @property
    def workers(self) -> int:
        return self.config.equivalence.concurrency

    def _over_budget(self) -> bool:
        if self.config.max_cost is not None and self.spent >= self.config.max_cost:
            self.part.stopped_for_cost = True
            self.stop.set()
            return True
        return False

    async def decide(self, cell: AnswerSet, i: int, later: list[int]) -> dict[int, bool]:
        got = await asyncio.gather(*(self.one(cell, i, j) for j in later))
        return {j: same for j, same in zip(later, got) if same is not None}

    async def one(self, cell: AnswerSet, i: int, j: int) -> bool | None:
        async with self.slots:
            text = pair_prompt(self.template, cell.prompt, cell.texts[i], cell.texts[j])
            cost, content, error = 0.0, "", None
            for seed in (0, 1):                 # an unreadable reply is asked once more
                if self.stop.is_set() or self._over_budget():
                    return None
                reply = await self._send(text, seed)
                if reply is None:
                    return None
                if isinstance(reply, PermanentError):
                    error = self.request.redact(str(reply))
                    self.part.failed_permanent += 1
                    break
                content = reply.choices[0].message.content or ""
                spent = (getattr(reply, "_hidden_params", None) or {}).get("response_cost") or 0.0
                cost += spent
                self.spent += spent
                self.part.cost += spent
                same, error = parse_verdict(content)
                if error is None:
                    self._store(cell, i, j, same, content, None, cost)
                    self.part.asked += 1
                    return same
            else:
                self.part.unreadable += 1
                error = f"{error} (asked twice; stored as different)"
            self._store(cell, i, j, False, content or None, error, cost)
            self.part.asked += 1
            return False

    async def _send(self, text: str, seed: int):
        """The reply; a PermanentError that concerns this pair only; None when nothing can be decided now."""
        part = self.part

        def count_retry(_err: BaseException) -> None:
            part.retries += 1

        try:
            return await call_with_retries(lambda: self.request.send(text, seed), self.policy, self.rng,
                                           count_retry)
        except PermanentError as err:
            if not err.fatal_for_system:
                return err
            part.stopped = f"equivalence judge {self.config.equivalence.model!r}: {self.request.redact(str(err))}"
            self.stop.set()     # key, model name: every other pair would fail the same way
        except GaveUp as err:
            part.failed_transient += 1
            part.last_transient = self.request.redact(str(err))
            if part.asked == 0 and part.failed_transient >= self.workers:
                # Never answered once: unreachable, not flaky. Stop rather than retry every pair.
                where = self.config.equivalence.api_base or "provider default"
                part.stopped = (f"equivalence judge {self.config.equivalence.model!r} at {where} is unreachable: "
                                f"{part.last_transient}")
                self.stop.set()
        return None

    def _store(self, cell: AnswerSet, i: int, j: int, same: bool, raw: str | None, error: str | None,
               cost: float) -> None:
        self.store.add_verdicts([Verdict(cell.system_id, cell.prompt_id, cell.samples[i], cell.samples[j],
                                         self.method, same, raw=raw, error=error, cost=cost or None)])
