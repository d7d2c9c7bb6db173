"""Collector overhead vs bare litellm, and the cost of a re-run over a full store.

The "local instant-answer endpoint" is tests/fake_openai.py in a separate process (no faults, no delay),
so what is measured is the client side: litellm's HTTP path alone, then the same path inside the
collector (seeds, retries wrapper, one SQLite commit per sample, progress accounting).

Targets: the collector reaches >= 70% of bare `litellm.acompletion` throughput at the same concurrency;
a re-run over 10,000 stored samples finishes in < 5 s and sends 0 requests.

    .venv/bin/python benchmarks/bench_collect.py [--requests 2000] [--concurrency 32] [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import litellm  # noqa: E402
from fake_openai import FakeProcess, remote_configure, remote_stats  # noqa: E402

from hivemind.collect.stage import collect_run, sample_seed  # noqa: E402
from hivemind.core.config import RunConfig, System  # noqa: E402
from hivemind.store import Prompt, Response, Store  # noqa: E402

MODEL = "openai/bench"
KEY = "sk-bench-local"


def write_prompts(folder: Path, n: int) -> Path:
    path = folder / f"prompts-{n}.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i:05d}", "prompt": f"Open question number {i}: what do you "
                                        f"think about it?"}) + "\n" for i in range(n)), encoding="utf-8")
    return path


def run_config(name: str, prompts: Path, samples: int, url: str, concurrency: int, results: Path) -> RunConfig:
    system = System(name="bench", model=MODEL, api_base=url, params={"max_tokens": 32}, concurrency=concurrency)
    return RunConfig(name=name, prompts=str(prompts), samples=samples, systems=[system], results_dir=str(results),
                     max_attempts=3, retry_base_delay=0.01, request_timeout=30)


async def bare_litellm(url: str, n: int, concurrency: int) -> float:
    """n acompletion calls, `concurrency` at a time; returns seconds."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            reply = await litellm.acompletion(
                model=MODEL, messages=[{"role": "user", "content": f"Open question number {i % 100}"}],
                api_base=url, api_key=KEY, max_tokens=32, seed=i, timeout=30, max_retries=0, num_retries=0)
            assert reply.choices[0].message.content

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started


def hivemind_collect(config: RunConfig) -> float:
    started = time.perf_counter()
    summary = collect_run(config, progress=False)
    elapsed = time.perf_counter() - started
    assert summary.stored == summary.requested, summary
    return elapsed


def fill_store(config: RunConfig, prompts: Path) -> int:
    """Store a complete run directly (every prompt x sample answered) for the configured system."""
    from hivemind.collect.prompts import load_prompts

    system = config.systems[0]
    loaded = load_prompts(config)
    with Store(config.store_path) as store:
        store.add_system(system.identity, system.name, system.model, system.api_base, system.params)
        store.add_prompts(loaded)
        store.add_responses(
            Response(system.identity, p.id, s, f"stored answer {p.id} {s}", seed=sample_seed(config.seed, p.id, s),
                     finish_reason="stop", prompt_tokens=8, completion_tokens=4, latency_s=0.01)
            for p in loaded for s in range(config.samples))
        return store.count_responses()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rerun-prompts", type=int, default=200)
    parser.add_argument("--rerun-samples", type=int, default=50)
    args = parser.parse_args()
    samples = 20
    n_prompts = max(1, args.requests // samples)
    n = n_prompts * samples
    litellm.suppress_debug_info = True

    with tempfile.TemporaryDirectory() as tmp, FakeProcess() as url:
        folder = Path(tmp)
        prompts = write_prompts(folder, n_prompts)
        # warm-up: imports, the HTTP client pool, litellm's first-call set-up, on both sides
        asyncio.run(bare_litellm(url, 64, args.concurrency))
        hivemind_collect(run_config("warmup", write_prompts(folder, 8), 8, url, args.concurrency, folder / "w"))

        bare_rates, hive_rates = [], []
        for round_no in range(args.rounds):   # alternate, so drifting machine load hits both sides alike
            bare_s = asyncio.run(bare_litellm(url, n, args.concurrency))
            remote_configure(url, reset=True)
            hive_s = hivemind_collect(run_config(f"round{round_no}", prompts, samples, url, args.concurrency,
                                                 folder / f"r{round_no}"))
            served = remote_stats(url)["requests"]
            assert served == n, f"collector sent {served} requests for {n} samples"
            bare_rates.append(n / bare_s)
            hive_rates.append(n / hive_s)
            print(f"round {round_no + 1}: bare litellm {n / bare_s:7.1f} req/s ({bare_s:.2f} s)   "
                  f"hivemind collect {n / hive_s:7.1f} req/s ({hive_s:.2f} s)", flush=True)

        rerun_prompts = write_prompts(folder, args.rerun_prompts)
        config = run_config("rerun", rerun_prompts, args.rerun_samples, url, args.concurrency, folder / "rerun")
        stored = fill_store(config, rerun_prompts)
        remote_configure(url, reset=True)
        started = time.perf_counter()
        summary = collect_run(config, progress=False)
        rerun_s = time.perf_counter() - started
        rerun_requests = remote_stats(url)["requests"]
        assert summary.skipped == stored and summary.requested == 0, summary
        # The same re-run as a user types it: a fresh process, imports included.
        from hivemind.results.record import save_run_config
        save_run_config(config)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hivemind.cli", "collect", config.name, "-q"], check=True,
                       capture_output=True, env=dict(os.environ, HIVEMIND_RESULTS=config.results_dir))
        cli_s = time.perf_counter() - started
        rerun_requests += remote_stats(url)["requests"]

    best_ratio = max(hive_rates) / max(bare_rates)
    median_ratio = statistics.median(hive_rates) / statistics.median(bare_rates)
    print()
    print("Collector benchmark (benchmarks/bench_collect.py; fake OpenAI server in its own process, "
          "no faults, no delay)")
    print(f"  {n} requests (1 system, {n_prompts} prompts x {samples} samples), concurrency {args.concurrency}, "
          f"best of {args.rounds} alternating rounds")
    print(f"  bare litellm.acompletion   {max(bare_rates):8.1f} req/s")
    print(f"  hivemind collect           {max(hive_rates):8.1f} req/s   (SQLite commit per sample)")
    print(f"  ratio collect / bare       {best_ratio:8.2f}      (median {median_ratio:.2f}; target >= 0.70)")
    print(f"  re-run over {stored} stored samples: {rerun_s:.2f} s in process, {cli_s:.2f} s as a "
          f"`hivemind collect` command; {rerun_requests} requests sent (target < 5 s, 0 requests)")


if __name__ == "__main__":
    main()
