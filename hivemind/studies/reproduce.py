"""Reproduce the paper: plan (keys, dataset, cost) before anything is sent, then run what can run.

`plan` sends nothing: it says which systems have their key variable set, whether the prompt set loads,
and what the answers would cost at litellm's prices (unknown prices are named, not guessed). `run`
prints the plan, stops above a cost threshold unless told --yes, collects only the runnable systems,
then embeds, analyses, reports and writes `paper_reference.json` (the paper's published figures) beside
the run's own tables, so the report can show both.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hivemind.core.config import DatasetSource, RunConfig, System
from hivemind.core.errors import HivemindError
from hivemind.report.paper import PAPER_REFERENCE   # the paper's figures, declared with the report

DEFAULT_COMPLETION_TOKENS = 512  # per answer, when a system sets no max_tokens
# Prompt sets whose size is published: the plan can price a run before the set is downloaded.
KNOWN_PROMPT_COUNTS = {"liweijiang/infinite-chats-eval": 100}
ASSUMED_PROMPT_TOKENS = 40       # per prompt when the set is not loaded (INFINITY-CHAT100 prompts are short)
REFERENCE_NAME = "paper_reference.json"

# Providers that reject min_p (it reaches them as an unknown body field) and their other limits.
NO_MIN_P = {"openai", "azure", "anthropic", "gemini", "vertex_ai", "vertex_ai_beta", "mistral", "cohere",
            "cohere_chat", "dashscope", "qwencloud", "bedrock"}
MAX_TEMPERATURE = {"anthropic": 1.0}


@dataclass
class SystemPlan:
    name: str
    model: str
    provider: str
    api_key_env: str | None
    runnable: bool
    samples_todo: int = 0              # answers still missing from the store
    prompt_tokens: int = 0
    completion_tokens: int = 0
    completion_is_max: bool = False    # completion_tokens is max_tokens x answers: an upper bound
    cost: float | None = None          # None: litellm has no price for this model
    warnings: list[str] = field(default_factory=list)
    retired: str | None = None         # why no request can reach the model any more (routes.retirement)
    missing: str | None = None         # the key variable(s) to set before it can run


@dataclass
class ReproductionPlan:
    """What `reproduce` would run: per system its key, retirement and cost, the prompt set, the embedder."""
    run: str
    dataset: str
    dataset_ok: bool
    dataset_error: str | None
    n_prompts: int | None
    samples: int
    systems: list[SystemPlan]
    embedder: str
    embedder_key_missing: str | None = None
    embed_cost: float | None = 0.0

    @property
    def runnable(self) -> list[str]:
        return [s.name for s in self.systems if s.runnable]

    @property
    def missing_keys(self) -> dict[str, str]:
        """{system: variable(s)} for reachable systems whose key is not set."""
        return {s.name: s.missing for s in self.systems if not s.runnable and s.missing and not s.retired}

    @property
    def retired(self) -> dict[str, str]:
        return {s.name: s.retired for s in self.systems if s.retired}

    @property
    def unknown_price(self) -> list[str]:
        return [s.name for s in self.systems if s.runnable and s.samples_todo and s.cost is None]

    @property
    def prompts_assumed(self) -> bool:
        return not self.dataset_ok and self.n_prompts is not None

    @property
    def total_cost(self) -> float:
        """Known costs of the runnable systems plus embedding; unknown prices count as zero (listed apart)."""
        known = sum(s.cost or 0.0 for s in self.systems if s.runnable)
        return known + (self.embed_cost or 0.0)

    def blockers(self) -> list[str]:
        lines = []
        if not self.runnable:
            variables = sorted(set(self.missing_keys.values()))
            lines.append("no system can run: set at least one of " + (", ".join(variables) or "(none reachable)"))
        if not self.dataset_ok:
            lines.append(f"the prompt set {self.dataset} could not be loaded (see the plan above)")
        if self.embedder_key_missing and self.runnable:
            lines.append(f"the embedder {self.embedder} needs {self.embedder_key_missing} in the environment")
        return lines

    def describe(self) -> str:
        """Short: missing keys grouped by variable, the dataset named once, retired systems named."""
        if self.n_prompts is None:
            prompts = "? prompts"
        else:
            assumed = " (published size; set not loaded)" if self.prompts_assumed else ""
            prompts = f"{self.n_prompts} prompts{assumed}"
        lines = [f"plan for run {self.run!r}: {len(self.systems)} systems, {prompts} x {self.samples} samples",
                 f"prompt set: {self.dataset} ({'loaded' if self.dataset_ok else 'MISSING'})"]
        if not self.dataset_ok:
            lines.append(f"  {_without(self.dataset_error or '', self.dataset)}")
        lines.append(f"runnable ({len(self.runnable)}): {', '.join(self.runnable) or 'none'}")
        by_variable: dict[str, list[str]] = {}
        for name, variable in self.missing_keys.items():
            by_variable.setdefault(variable, []).append(name)
        if by_variable:
            lines.append(f"missing keys ({len(self.missing_keys)} systems):")
            lines += [f"  {variable}: {_short(names)}" for variable, names in by_variable.items()]
        if self.retired:
            lines.append(f"retired ({len(self.retired)} systems; no request is sent):")
            lines += [f"  {name}: {why}" for name, why in self.retired.items()]
        lines += self._cost_lines()
        warned = [(s.name, w) for s in self.systems if not s.retired for w in s.warnings]
        lines += [f"  warning: {name}: {w}" for name, w in warned]
        if self.embedder_key_missing:
            lines.append(f"embedder {self.embedder}: set {self.embedder_key_missing}")
        return "\n".join(lines)

    def _cost_lines(self) -> list[str]:
        if self.n_prompts is None:
            return ["cost: unknown until the prompt set loads"]
        reachable = [s for s in self.systems if not s.retired and s.samples_todo]
        known = sum(s.cost for s in reachable if s.cost is not None)
        unknown = [s.name for s in reachable if s.cost is None]
        capped = any(s.completion_is_max for s in reachable)
        answers = sum(s.samples_todo for s in reachable)
        line = f"cost estimate, every reachable system ({answers} answers): ${known:.2f}"
        if capped:
            line += " (upper bound: max_tokens per answer)"
        if self.embed_cost is None:
            unknown.append(f"embedding with {self.embedder}")
        else:
            line += f" + embedding ${self.embed_cost:.2f}"
        lines = [line]
        if unknown:
            lines.append(f"  price unknown to litellm ({len(unknown)}): {_short(unknown)}")
        if self.runnable:
            total = f"estimated total for the runnable systems: ${self.total_cost:.4f}"
            if self.unknown_price:
                total += f" + unknown for {', '.join(self.unknown_price)}"
            lines.append(total)
            for s in self.systems:
                if s.runnable:
                    bound = " (upper bound: max_tokens)" if s.completion_is_max else ""
                    price_text = f"${s.cost:.4f}" if s.cost is not None else "price unknown to litellm"
                    lines.append(f"  {s.name}: {s.samples_todo} answers, ~{s.prompt_tokens} prompt + "
                                 f"{s.completion_tokens} completion tokens{bound}: {price_text}")
        return lines


def _short(names: list[str]) -> str:
    """Systems of one model under both decodings shown once: 'gpt-4o@{top-p,min-p}'."""
    grouped: dict[str, list[str]] = {}
    for name in names:
        base, _, decoding = name.partition("@")
        grouped.setdefault(base, []).append(decoding)
    parts = [base + (f"@{{{','.join(d)}}}" if len(d) > 1 else (f"@{d[0]}" if d[0] else ""))
             for base, d in grouped.items()]
    return ", ".join(parts)


def _without(message: str, dataset: str) -> str:
    """The loader's error without repeating the dataset name the plan already printed."""
    return message.replace(f"dataset '{dataset}'", "it").replace(f"'{dataset}'", "it").replace(dataset, "it")


def select(config: RunConfig, systems: list[str] | None = None, limit: int | None = None,
           samples: int | None = None) -> RunConfig:
    """A copy of the config narrowed to some systems, a prompt limit and a sample count."""
    update: dict[str, Any] = {}
    if systems:
        update["systems"] = [config.system(name) for name in systems]
    if limit is not None:
        update["limit"] = limit
    if samples is not None:
        update["samples"] = samples
    return config.model_copy(update=update, deep=True)


def reproduction_plan(config: RunConfig, systems: list[str] | None = None, limit: int | None = None,
         samples: int | None = None, completion_tokens: int | None = None,
         today: dt.date | None = None) -> ReproductionPlan:
    """What would run, what is missing, what is retired and what it would cost; sends nothing.

    `today` decides which routes are retired (routes.retirement); tests pin it."""
    from hivemind.collect.prompts import Prompt, load_prompts

    config = select(config, systems, limit, samples)
    dataset = _dataset_name(config)
    try:
        prompts = load_prompts(config)
        dataset_ok, dataset_error = True, None
    except HivemindError as err:
        prompts, dataset_ok, dataset_error = None, False, str(err)
        count = KNOWN_PROMPT_COUNTS.get(dataset)
        if count is not None:  # price the run on the set's published size, with prompts of typical length
            count = min(count, config.limit) if config.limit else count
            prompts = [Prompt(id=f"assumed-{i}", text="x" * (4 * ASSUMED_PROMPT_TOKENS - 32)) for i in range(count)]
    done = _done_keys(config)
    system_plans = [_system_plan(config, s, prompts, done.get(s.identity, set()), completion_tokens, today)
                    for s in config.systems]
    result = ReproductionPlan(run=config.name, dataset=dataset, dataset_ok=dataset_ok, dataset_error=dataset_error,
                              n_prompts=len(prompts) if prompts is not None else None, samples=config.samples,
                              systems=system_plans, embedder=config.embedder.id)
    key = config.embedder.api_key_env
    if key and not os.environ.get(key):
        result.embedder_key_missing = key
    result.embed_cost = _embed_cost(config, system_plans)
    return result


def _dataset_name(config: RunConfig) -> str:
    source = config.prompts
    return source.dataset if isinstance(source, DatasetSource) else str(source)


def _done_keys(config: RunConfig) -> dict[str, set]:
    """Answers already in the store per system identity: a resumed run only pays for the rest."""
    if not config.store_path.is_file():
        return {}
    from hivemind.store import Store

    with Store.open_readonly(config.store_path) as store:
        return {s.identity: store.done_keys(s.identity) for s in config.systems}


def _provider(system: System) -> str:
    import litellm

    try:
        return litellm.get_llm_provider(system.model, api_base=system.api_base)[1]
    except Exception:  # unknown prefix: collect reports it with a fix; here it is only a label
        return system.model.split("/", 1)[0] if "/" in system.model else "unknown"


def _missing_key(system: System) -> str | None:
    """The variable(s) a system still needs: its api_key_env, or litellm's own (Bedrock's AWS_*, ...)."""
    if system.api_key_env:
        return None if os.environ.get(system.api_key_env) else system.api_key_env
    if system.api_base:
        return None
    import litellm

    try:
        missing = litellm.validate_environment(model=system.model).get("missing_keys") or []
    except Exception:  # an unknown provider: collect names the fix; the plan cannot tell
        return None
    return ", ".join(missing) or None


def _system_plan(config: RunConfig, system: System, prompts, done: set, completion_tokens: int | None,
                 today: dt.date | None = None) -> SystemPlan:
    from hivemind.collect.routes import retirement

    provider = _provider(system)
    missing = _missing_key(system)
    retired = retirement(system.model, today)
    plan = SystemPlan(name=system.name, model=system.model, provider=provider, api_key_env=system.api_key_env,
                      runnable=missing is None and retired is None, warnings=_warnings(system, provider))
    plan.missing, plan.retired = missing, retired
    if retired:
        from hivemind.collect.routes import default_route, paper_model

        model = paper_model(system.name)
        route = default_route(model, today) if model else None
        if route is not None and route.model != system.model:
            plan.retired += f"; use {route.model} instead ({route.what_to_set})"
        elif model is not None:
            plan.retired += "; no other route reaches it"
    if prompts is None:
        return plan
    todo = [(p, s) for p in prompts for s in range(config.samples) if (p.id, s) not in done]
    max_tokens = system.params.get("max_tokens") or system.params.get("max_completion_tokens")
    per_answer = completion_tokens or max_tokens or DEFAULT_COMPLETION_TOKENS
    plan.completion_is_max = completion_tokens is None and bool(max_tokens)
    plan.samples_todo = len(todo)
    # ~4 characters per token (English); the chat template adds a few tokens per message.
    plan.prompt_tokens = sum(math.ceil(len(p.text) / 4) + 8 for p, _ in todo)
    plan.completion_tokens = int(per_answer) * len(todo)
    self_hosted = provider == "hosted_vllm"  # your own GPUs: no per-token price
    plan.cost = price(system.model, plan.prompt_tokens, plan.completion_tokens) if todo and not self_hosted else 0.0
    return plan


def _warnings(system: System, provider: str) -> list[str]:
    warnings = []
    if "min_p" in system.params and provider in NO_MIN_P:
        warnings.append(f"{provider} does not accept min_p: requests will fail with 400 "
                        f"(leave it out with --systems)")
    cap = MAX_TEMPERATURE.get(provider)
    temperature = system.params.get("temperature")
    if cap is not None and isinstance(temperature, (int, float)) and temperature > cap:
        warnings.append(f"{provider} accepts temperature up to {cap}, this system sets {temperature}")
    return warnings


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD at litellm's prices (the local cost map), or None when litellm does not know the model."""
    import litellm

    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    except Exception:  # litellm raises several types for "not mapped"
        return None
    return float(prompt_cost) + float(completion_cost)


def _embed_cost(config: RunConfig, systems: list[SystemPlan]) -> float | None:
    """Embedding APIs bill the answers' tokens; a local sentence-transformers model costs nothing."""
    if config.embedder.provider != "litellm":
        return 0.0
    tokens = sum(s.completion_tokens for s in systems if (s.runnable or not any(x.runnable for x in systems))
                 and not s.retired)
    if tokens == 0:
        return 0.0
    return price(config.embedder.model, tokens, 0)


# Run -----------------------------------------------------------------------------------------------

@dataclass
class ReproduceSummary:
    plan: ReproductionPlan
    config: RunConfig
    collect: Any = None
    embed: Any = None
    analysis: Any = None
    report: Path | None = None
    reference: Path | None = None

    def __str__(self) -> str:
        return (f"reproduced {len(self.config.systems)} systems of {self.config.name!r} into {self.config.run_dir}; "
                f"report: {self.report}; paper figures: {self.reference}")


def run(config: RunConfig, systems: list[str] | None = None, limit: int | None = None, yes: bool = False,
        threshold_usd: float = 10.0, samples: int | None = None, completion_tokens: int | None = None,
        progress: bool = True, wait: bool = False) -> ReproduceSummary:
    """Plan, check the cost gate, then collect the runnable systems, embed, analyse and report."""
    the_plan = reproduction_plan(config, systems, limit, samples, completion_tokens)
    print(the_plan.describe(), flush=True)
    blockers = the_plan.blockers()
    if blockers:
        lines = [f"cannot reproduce {config.name!r}:"] + [f"  {b}" for b in blockers]
        raise HivemindError("\n".join(lines))
    if the_plan.total_cost > threshold_usd and not yes:
        raise HivemindError(f"estimated cost ${the_plan.total_cost:.2f} is above the ${threshold_usd:.2f} "
                            f"threshold; pass --yes to spend it, or shrink the run with --systems / --limit")
    run_config = _run_config(config, the_plan, limit, samples)
    summary = ReproduceSummary(plan=the_plan, config=run_config)
    from hivemind import pipeline

    with pipeline.locked(run_config, "reproduce", wait):
        summary.reference = write_reference(run_config)   # before the report, which shows it
        result = pipeline.run(run_config, systems=the_plan.runnable, progress=progress)
    summary.collect, summary.embed, summary.analysis = result.collect, result.embed, result.analysis
    summary.report = result.report
    return summary


def _run_config(config: RunConfig, the_plan: ReproductionPlan, limit: int | None, samples: int | None) -> RunConfig:
    """The runnable systems plus any already stored in the run, so earlier answers stay in the analysis."""
    narrowed = select(config, [s.name for s in the_plan.systems], limit, samples)
    stored = _stored_identities(narrowed)
    keep = [s.name for s in narrowed.systems if s.name in the_plan.runnable or s.identity in stored]
    return select(narrowed, keep)


def _stored_identities(config: RunConfig) -> set[str]:
    if not config.store_path.is_file():
        return set()
    from hivemind.store import Store

    with Store.open_readonly(config.store_path) as store:
        return {s.identity for s in config.systems if store.count_responses([s.identity], with_text=True)}


def write_reference(config: RunConfig) -> Path:
    """paper_reference.json in the run folder: the published figures the report shows beside the run's."""
    from hivemind.results.folder import write_text

    return write_text(config.run_dir / REFERENCE_NAME, json.dumps(PAPER_REFERENCE, indent=2) + "\n", config)
