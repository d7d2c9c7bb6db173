"""`hivemind plan CONFIG --scale`: what a run costs before it runs: requests, tokens, money, embedding
time per backend and per worker count, store and snapshot sizes.

Everything is arithmetic on the config and on figures measured once and recorded here (with the
machine that gave them):
- answers = prompts x samples x systems; one chat request per answer (the collector asks one sample per
  request, each with its own seed).
- tokens: prompt tokens = prompt characters / 4 per request; answer tokens = the system's `max_tokens`
  where set, else the mean AlpacaEval answer (1,645 characters, ~411 tokens: MEAN_ANSWER_TOKENS).
- cost: litellm's price table (`litellm.model_cost`, input and output price per token); a system whose
  model has no price there is named, not guessed.
- embedding time = distinct texts (answers + prompts) / texts per second of the backend (TEXTS_PER_S,
  measured with benchmarks/bench_backends.py), divided by the worker count: embedding is embarrassingly
  parallel by prompt, so W workers of one kind take 1/W of the time, plus nothing for coordination (an
  assumption: the Ray engine is not measured).
- sizes: bytes per answer and per 384-d vector measured in a real store of the 12,880 AlpacaEval answers
  (benchmarks/measure_sizes.py); the snapshot's Parquet holds the answers (zstd/snappy-compressed).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hivemind.core.config import RunConfig

CHARS_PER_TOKEN = 4
MEAN_ANSWER_TOKENS = 411          # AlpacaEval answers of 16 models: mean 1,645 characters
STORE_BYTES_PER_ANSWER = 2401     # SQLite row incl. text, hash, index share, prompts (measured)
STORE_BYTES_PER_VECTOR = 2138     # one 384-d float32 vector with its key (measured)
SNAPSHOT_BYTES_PER_ANSWER = 748   # Parquet export of the answers (measured)
VECTOR_DIM_MEASURED = 384

# Texts per second for all-MiniLM-L6-v2, bare encode (texts cut at 256 word pieces), real AlpacaEval answers.
# (machine, backend) -> texts/s; from benchmarks/bench_backends.py, each machine's rows measured in one run.
TEXTS_PER_S = {
    ("2-core AVX2 CPU", "torch"): 12.7,
    ("2-core AVX2 CPU", "onnx"): 11.4,
    ("2-core AVX2 CPU", "onnx-int8"): 19.6,
    ("H100 host, 16 CPU cores", "torch"): 74.9,
    ("NVIDIA H100 80GB", "torch (cuda fp32)"): 482.0,
    ("NVIDIA H100 80GB", "torch-fp16 (cuda)"): 341.5,
}
WORKERS = (1, 8, 64)


@dataclass
class RunEstimate:
    """One run's estimated requests, tokens, cost, store and snapshot sizes, embedding times (module docstring)."""
    prompts: int
    systems: int
    samples: int
    settings: int
    answers: int
    requests: int
    prompt_tokens: int
    answer_tokens: int
    cost: float                                   # USD over priced systems
    unpriced: list[str] = field(default_factory=list)
    store_bytes: int = 0
    snapshot_bytes: int = 0
    embed_seconds: dict = field(default_factory=dict)   # (machine, backend, workers) -> seconds


def estimate(prompts: int, systems: list[tuple[str, int | None]], samples: int, settings: int = 1,
             prompt_chars: float = 400.0) -> RunEstimate:
    """systems: (litellm model name, max_tokens or None). settings: decoding settings, each a full pass."""
    import litellm

    answers = prompts * samples * len(systems) * settings
    per_request_in = int(prompt_chars / CHARS_PER_TOKEN)
    cost, unpriced, answer_tokens = 0.0, [], 0
    for model, max_tokens in systems:
        n = prompts * samples * settings
        out = max_tokens or MEAN_ANSWER_TOKENS
        answer_tokens += n * out
        price = litellm.model_cost.get(model) or litellm.model_cost.get(model.split("/", 1)[-1])
        if not price or price.get("input_cost_per_token") is None:
            unpriced.append(model)
            continue
        cost += n * (per_request_in * price["input_cost_per_token"] + out * price.get("output_cost_per_token", 0))
    texts = answers + prompts
    seconds = {(machine, backend, w): texts / rate / w for (machine, backend), rate in TEXTS_PER_S.items()
               for w in WORKERS}
    return RunEstimate(prompts, len(systems), samples, settings, answers, answers, answers * per_request_in,
                       answer_tokens, cost, unpriced, store_bytes=answers * STORE_BYTES_PER_ANSWER
                       + texts * STORE_BYTES_PER_VECTOR, snapshot_bytes=answers * SNAPSHOT_BYTES_PER_ANSWER,
                       embed_seconds=seconds)


def plan_config(config: RunConfig, prompts: int | None = None, settings: int = 1) -> RunEstimate:
    if prompts is None:
        from hivemind.collect.prompts import load_prompts
        loaded = load_prompts(config)
        prompts, chars = len(loaded), sum(len(p.text) for p in loaded) / max(len(loaded), 1)
    else:
        chars = 400.0
    systems = [(s.model, (s.params or {}).get("max_tokens")) for s in config.systems]
    return estimate(prompts, systems, config.samples, settings, chars)


PAPER = dict(prompts=26_000, samples=50, settings=2)   # INFINITY-CHAT x 25 models x 50 samples x 2 decodings


def paper_plan() -> RunEstimate:
    return estimate(PAPER["prompts"], [("gpt-4o-mini", None)] * 25, PAPER["samples"], PAPER["settings"])


def duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def render(plan: RunEstimate, title: str) -> str:
    lines = [f"{title}: {plan.prompts:,} prompts x {plan.systems} systems x {plan.samples} samples"
             f" x {plan.settings} settings = {plan.answers:,} answers",
             f"requests: {plan.requests:,}; tokens: {plan.prompt_tokens:,} in, {plan.answer_tokens:,} out "
             f"(answers ~{MEAN_ANSWER_TOKENS} tokens where max_tokens is unset)",
             f"cost: ${plan.cost:,.2f}" + (f" plus unpriced models: {', '.join(sorted(set(plan.unpriced)))}"
                                          if plan.unpriced else ""),
             f"store: {plan.store_bytes / 1e9:,.1f} GB (answers + one 384-d embedder); snapshot Parquet: "
             f"{plan.snapshot_bytes / 1e9:,.1f} GB",
             "embedding time (all-MiniLM-L6-v2, measured texts/s; workers scale linearly by assumption):"]
    for (machine, backend), rate in TEXTS_PER_S.items():
        cells = ", ".join(f"{w} workers {duration(plan.embed_seconds[(machine, backend, w)])}" for w in WORKERS)
        lines.append(f"  {machine}, {backend} ({rate:g} texts/s): {cells}")
    return "\n".join(lines)
