"""Collect: ask every system for `samples` answers to every prompt, through litellm, and store each one.

Only (system, prompt, sample) keys not already in the store are requested, so a re-run costs nothing and a
killed run resumes where it stopped. Answers that failed for good (400, context too long) are stored as
errors and not asked again, unless `retry_errors` says the user changed something: then they are re-sent
and each stored error is replaced by the new outcome. An endpoint that refuses every connection (or whose
host name does not resolve) and has never answered is given up within seconds (retry.Reachability), with
a message naming its api_base. Each sample carries a seed derived from (run seed, prompt, sample):
providers that take a seed give reproducible answers, and since the sample index is part of it no cache
can hand the same answer to two samples.
"""
from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from tqdm import tqdm

from hivemind.collect.prompts import load_prompts
from hivemind.core.config import RunConfig, System, require_keys
from hivemind.core.errors import HivemindError
from hivemind.core.retry import (
    GaveUp,
    PermanentError,
    Reachability,
    RetryPolicy,
    Unreachable,
    call_with_retries,
    describe,
    unreachable_cause,
)
from hivemind.core.secrets import redact
from hivemind.core.signals import run_async
from hivemind.results.record import save_run_config
from hivemind.store import Prompt, Response, Store
from hivemind.store.run import Run


@dataclass
class CollectSummary:
    requested: int = 0            # samples that were missing at the start
    stored: int = 0               # answers stored in this run (rows really inserted)
    failed_permanent: int = 0     # stored as errors, never retried (400, context too long, ...)
    failed_transient: int = 0     # not stored: still failing after every attempt; the next run retries
    skipped: int = 0              # already in the store
    retried_errors: int = 0       # stored permanent errors re-sent (retry_errors)
    duplicates: int = 0           # answers that arrived for a key another writer had stored meanwhile
    retries: int = 0
    cost: float = 0.0
    stopped_for_cost: bool = False
    system_errors: dict[str, str] = field(default_factory=dict)
    # Last transient error per system, so "still failing" says why (e.g. connection refused at api_base).
    transient_errors: dict[str, str] = field(default_factory=dict)
    # Systems with stored errors and not one answer: {name: (errors stored, the first error)}.
    all_failed: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return (not self.failed_transient and not self.system_errors and not self.stopped_for_cost
                and not self.all_failed)


def sample_seed(run_seed: int, prompt_id: str, sample: int) -> int:
    digest = hashlib.sha256(f"{run_seed}:{prompt_id}:{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def collect_run(run: Run | RunConfig, systems: list[str] | None = None, progress: bool = True,
                retry_errors: bool = False,
                prepare: Callable[[list[System]], AbstractContextManager] | None = None) -> CollectSummary:
    """Collect what is missing for `systems` (default: all); raise HivemindError if anything is left.

    retry_errors: also re-send the samples stored as permanent errors (after the user fixed something).
    prepare(systems with work): a context held while requests are sent (the orchestrator starts local
    servers in it). Call this through hivemind.pipeline.collect, which also holds the run lock."""
    with Run.of(run) as run:
        config = run.config
        chosen = [config.system(name) for name in systems] if systems else list(config.systems)
        chosen = list({system.name: system for system in chosen}.values())   # a system named twice is asked once
        prompts = load_prompts(config)
        plans = missing_samples(run, chosen, prompts, retry_errors)
        summary = CollectSummary(requested=sum(todo.count for todo in plans))
        summary.skipped = len(chosen) * len(prompts) * config.samples - summary.requested
        if summary.requested:
            check_systems(chosen)
            save_run_config(config)
            store = run.store(create=True)   # the first request is near: only now is the store made
            for system in chosen:
                store.add_system(system.identity, system.name, system.model, system.api_base, system.params)
            store.add_prompts(prompts)
            busy = [todo.system for todo in plans if todo.count]
            with prepare(busy) if prepare is not None else nullcontext():
                run_async(_collect(config, plans, store, summary, progress, retry_errors))
        # else: nothing to ask, no provider check, so a re-run never even imports litellm
        summary.all_failed = failed_systems(run, chosen)
        if not summary.complete:
            raise HivemindError(_incomplete_message(config, summary))
        return summary


def failed_systems(run: Run | RunConfig, systems: list[System]) -> dict[str, tuple[int, str]]:
    """Systems whose every stored sample is a permanent error: {name: (errors, first error)}."""
    with Run.of(run) as run:
        store = run.existing_store()
        if store is None:
            return {}
        counts = store.outcome_counts([s.identity for s in systems])
        failed = {}
        for system in systems:
            answers, errors = counts.get(system.identity, (0, 0))
            if errors and not answers:
                failed[system.name] = (errors, store.first_error([system.identity]) or "?")
    return failed


def all_failed_message(config: RunConfig, failed: dict[str, tuple[int, str]]) -> str:
    """What to say when systems have nothing but errors (collect, and embed/analyze on such a run)."""
    lines = []
    for name, (errors, first) in failed.items():
        lines.append(f"  every request of system {name!r} failed ({errors} errors stored, no answer); "
                     f"the first error: {first}")
    lines.append(f"  fix what the error names (model, params, api_base, the server), then run "
                 f"`hivemind collect {config.name} --retry-errors` (or with the config file) to send those "
                 f"requests again.")
    return "\n".join(lines)


def check_systems(systems: list[System]) -> None:
    """Fail before any request: unknown provider, or a key that is not in the environment."""
    import litellm

    litellm.suppress_debug_info = True  # its banners would interleave with the progress bar
    for system in systems:
        try:
            litellm.get_llm_provider(system.model, api_base=system.api_base)
        except Exception:
            raise HivemindError(f"system {system.name!r}: litellm does not know the provider of model "
                                f"{system.model!r}; prefix it with a provider, e.g. openai/{system.model}") from None
    require_keys(systems)


def _incomplete_message(config: RunConfig, s: CollectSummary) -> str:
    parts = [f"collection of {config.name!r} is incomplete: {s.stored} answers stored now, "
             f"{s.skipped} were already stored (all kept in {config.store_path})."]
    for name, error in s.system_errors.items():
        parts.append(f"  system {name!r} stopped: {error}")
    if s.failed_transient:
        parts.append(f"  {s.failed_transient} samples still failing after {config.max_attempts} attempts; "
                     f"run the same command again to retry only those.")
        for name, error in s.transient_errors.items():
            parts.append(f"  system {name!r} (api_base {config.system(name).api_base or 'provider default'}), "
                         f"last error: {error}")
    if s.stopped_for_cost:
        parts.append(f"  stopped at max_cost {config.max_cost} (spent ${s.cost:.6f}); raise max_cost to go on.")
    if s.all_failed:
        parts.append(all_failed_message(config, s.all_failed))
    return "\n".join(parts)


def unreachable_message(system: System, err: BaseException) -> str:
    from hivemind.collect.local_server import how_to_start

    where = system.api_base or "the provider's default endpoint"
    hint = how_to_start(system.api_base, system.model) or ("check that the server is running and that "
                                                             "api_base (host, port) is right")
    return f"cannot reach {where}: {err}; nothing there has answered. {hint[0].upper()}{hint[1:]}."


class _Collector:
    def __init__(self, config: RunConfig, store: Store, summary: CollectSummary, bar: tqdm,
                 retry_errors: bool = False):
        self.config = config
        self.store = store
        self.summary = summary
        self.bar = bar
        self.policy = RetryPolicy(config.max_attempts, config.retry_base_delay, config.retry_max_delay)
        self.spent = store.total_cost()
        self.stop_all = False
        self.retry_errors = retry_errors
        self.last_error = ""
        self.shown_at = 0.0

    def show(self, error: str | None = None) -> None:
        """Retries and the last error in the progress bar, redrawn at most twice a second."""
        if error is not None:
            self.last_error = error
        s = self.summary
        text = f"retries={s.retries}"
        if s.failed_permanent or s.failed_transient:
            text += f" failed={s.failed_permanent + s.failed_transient}"
        if self.last_error:
            text += f" last: {self.last_error[:80]}"
        now = time.monotonic()
        refresh = now - self.shown_at >= 0.5
        if refresh:
            self.shown_at = now
        self.bar.set_postfix_str(text, refresh=refresh)

    def _over_budget(self) -> bool:
        if self.config.max_cost is not None and self.spent >= self.config.max_cost:
            self.summary.stopped_for_cost = True
            return True
        return False

    async def run_system(self, system: System, work: Iterator[tuple[Prompt, int]]) -> None:
        stop = asyncio.Event()
        request = _Request(system, self.config)
        rng = random.Random(system.identity)
        reach = Reachability()   # shared by the system's workers: one dead endpoint, one verdict

        async def worker() -> None:
            for prompt, sample in work:  # a shared iterator: each key is taken by one worker
                if stop.is_set() or self._over_budget():
                    return
                try:
                    await self.one(system, request, prompt, sample, rng, reach)
                except Unreachable as err:
                    self.summary.system_errors.setdefault(system.name,
                                                          request.redact(unreachable_message(system, err)))
                    stop.set()
                    return
                except PermanentError as err:
                    if err.fatal_for_system:
                        self.summary.system_errors[system.name] = request.redact(str(err))
                        stop.set()
                        return

        await asyncio.gather(*(worker() for _ in range(system.concurrency)))

    async def one(self, system: System, request: "_Request", prompt: Prompt, sample: int, rng,
                  reach: Reachability | None = None) -> None:
        seed = sample_seed(self.config.seed, prompt.id, sample)

        def count_retry(err: BaseException) -> None:
            self.summary.retries += 1
            self.show(f"{system.name}: {request.redact(unreachable_cause(err) or describe(err))}")

        started = time.perf_counter()
        try:
            reply = await call_with_retries(lambda: request.send(prompt.text, seed), self.policy, rng, count_retry,
                                            reach)
        except PermanentError as err:
            if not err.fatal_for_system:  # about this prompt (e.g. too long): record once, never re-ask
                self.save(Response(system.identity, prompt.id, sample, None, seed=seed,
                                   error=request.redact(str(err))))
                self.summary.failed_permanent += 1
                self.bar.update(1)
            self.show(f"{system.name}: {request.redact(str(err))}")
            raise
        except Unreachable:
            raise
        except GaveUp as err:
            self.summary.failed_transient += 1
            self.summary.transient_errors[system.name] = request.redact(str(err))
            self.bar.update(1)
            self.show(f"{system.name}: {request.redact(str(err))}")
            return
        response = _to_response(reply, system, prompt, sample, seed, time.perf_counter() - started)
        if not self.save(response):
            # Another writer stored this key meanwhile (the run lock prevents that; count it honestly anyway).
            self.summary.duplicates += 1
            self.bar.update(1)
            return
        self.summary.stored += 1
        if response.cost:
            self.spent += response.cost
            self.summary.cost += response.cost
        self.bar.update(1)

    def save(self, response: Response) -> bool:
        """Store one outcome; False when the key was already stored (nothing was written)."""
        if self.retry_errors:
            saved = self.store.replace_error_response(response)
        else:
            saved = self.store.insert_response(response)
        if saved and response.reasoning:
            self.store.add_reasoning(response.system_id, response.prompt_id, response.sample, response.reasoning)
        return saved


class _Request:
    """One system's litellm call, with the key read from the environment at call time."""

    def __init__(self, system: System, config: RunConfig):
        self.system = system
        self.timeout = config.request_timeout
        self.api_key = system.key(f"system {system.name!r}")
        self.params = dict(system.params)
        self.takes_seed = _accepts_seed(system)

    async def send(self, text: str, seed: int):
        import litellm

        kwargs = dict(self.params)
        if self.takes_seed:
            kwargs.setdefault("seed", seed)
        return await litellm.acompletion(
            model=self.system.model,
            messages=[{"role": "user", "content": text}],
            api_base=self.system.api_base,
            api_key=self.api_key,
            timeout=self.timeout,
            num_retries=0,       # retries are ours (hivemind.core.retry): counted and Retry-After aware
            max_retries=0,
            caching=False,       # a cache keyed on the prompt would give every sample the same answer
            **kwargs,
        )

    def redact(self, text: str) -> str:
        return redact(text, extra=[self.api_key])  # every key variable's value, and anything key-shaped


def _accepts_seed(system: System) -> bool:
    import litellm

    if system.api_base is not None:
        return True  # OpenAI-compatible endpoints (llama.cpp, vLLM, ...) take a seed
    try:
        return "seed" in (litellm.get_supported_openai_params(model=system.model) or [])
    except Exception:
        return False


def _to_response(reply, system: System, prompt: Prompt, sample: int, seed: int, latency: float) -> Response:
    choice = reply.choices[0]
    usage = getattr(reply, "usage", None)
    # litellm prices every reply as it logs it (documented as response._hidden_params["response_cost"]);
    # calling completion_cost again cost ~12% of the collector's time. None: no known price.
    cost = (getattr(reply, "_hidden_params", None) or {}).get("response_cost")
    text, reasoning = split_reasoning(choice.message.content or "",
                                      getattr(choice.message, "reasoning_content", None))
    return Response(
        system_id=system.identity, prompt_id=prompt.id, sample=sample, seed=seed,
        text=text, reasoning=reasoning,
        finish_reason=choice.finish_reason,
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
        latency_s=round(latency, 4), cost=cost,
    )


_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL)


def split_reasoning(content: str, reasoning_content: str | None) -> tuple[str, str | None]:
    """(answer, reasoning): litellm's `reasoning_content` when the provider separates it, else a leading
    <think>...</think> block (Qwen3, DeepSeek-R1 on plain OpenAI-compatible servers). Only the answer is
    embedded and measured; the reasoning goes to its own table."""
    match = _THINK.match(content)
    if match:
        inline = match.group(1).strip()
        content = content[match.end():]
        reasoning_content = "\n\n".join(t for t in (reasoning_content, inline) if t)
    return content, (reasoning_content or None)


@dataclass
class Todo:
    """One system's missing (prompt, sample) keys: how many, and a generator that yields them as the workers
    take them. Never a list: a million samples per prompt would be millions of tuples (1.3 GB) before the
    first request; now at most `concurrency` keys per system exist at a time."""
    system: System
    count: int
    keys: Iterator[tuple[Prompt, int]]
    retried: int = 0      # of `count`, keys stored as permanent errors that retry_errors re-sends


def missing_samples(run: Run | RunConfig, systems: list[System], prompts: list[Prompt], retry_errors: bool = False) -> list[Todo]:
    """The (prompt, sample) keys each system still lacks (with retry_errors, also those stored as permanent
    errors), as lazy Todos. Reads the store if there is one; writes nothing. The stored keys are read into a
    set (their number is what is stored, not what is asked)."""
    config = Run.config_of(run)
    total = len(prompts) * config.samples
    with Run.of(run) as run:
        store = run.existing_store()
        if store is None:
            return [Todo(system, total, missing_keys(prompts, config.samples, set())) for system in systems]
        store.check_prompts(prompts)
        plans = []
        ids = {prompt.id for prompt in prompts}

        def ours(keys: set) -> set:   # stored keys outside this run's prompts or sample range do not count
            return {(prompt_id, sample) for prompt_id, sample in keys
                    if prompt_id in ids and 0 <= sample < config.samples}

        for system in systems:
            done = ours(store.done_keys(system.identity))
            errors = ours(store.error_keys(system.identity)) if retry_errors else set()
            done -= errors
            plans.append(Todo(system, total - len(done), missing_keys(prompts, config.samples, done), len(errors)))
    return plans


def missing_keys(prompts: list[Prompt], samples: int, done: set[tuple[str, int]]) -> Iterator[tuple[Prompt, int]]:
    """Every (prompt, sample) not in `done`, in order, made one at a time as it is taken."""
    for prompt in prompts:
        for sample in range(samples):
            if (prompt.id, sample) not in done:
                yield prompt, sample


async def _collect(config: RunConfig, plans: list[Todo], store: Store, summary: CollectSummary,
                   progress: bool, retry_errors: bool = False) -> None:
    summary.retried_errors += sum(todo.retried for todo in plans)
    with tqdm(total=summary.requested, desc=f"collect {config.name}", unit="sample", disable=not progress,
              dynamic_ncols=True) as bar:
        collector = _Collector(config, store, summary, bar, retry_errors)
        await asyncio.gather(*(collector.run_system(todo.system, todo.keys) for todo in plans if todo.count))
    return summary
