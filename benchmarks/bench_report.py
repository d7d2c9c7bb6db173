"""report_run on a wide run: 25 systems x 100 prompts x 3 samples (7,500 answers), tables from analyze_run.

The store is synthetic but real (SQLite, analyze_run's own pass): per prompt a shared direction, per
system a direction and per answer noise, mixed so intra-model similarity spreads over 0.6-1.0 and
inter-model over ~0.5-0.85, like the paper's figures. Texts are built from a shared stock of sentences,
so systems share phrases; on some prompts one system repeats another's answer word for word (an exact
near-duplicate with identical vectors). No embedder is needed.

Target: report_run under 30 s on 2 cores.
Run: .venv/bin/python benchmarks/bench_report.py [--keep DIR]   (DIR keeps the run to look at)
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from hivemind.analyze.stage import analyze_run
from hivemind.core.config import RunConfig, System
from hivemind.results.record import save_run_config
from hivemind.report.stage import report_run
from hivemind.store import Prompt, Response, Store, text_hash

D = 384
VENDORS = ["openai/gpt-4o", "anthropic/claude-3-5-sonnet", "gemini/gemini-1.5-pro", "meta-llama/Llama-3.1-70B",
           "mistral/mistral-large", "qwen/Qwen2.5-72B", "deepseek/deepseek-v3", "01-ai/Yi-34B-Chat"]
SENTENCES = [
    "Time is a river that carries every moment gently toward the sea.",
    "Here are a few ideas you might find useful for getting started.",
    "In a quiet village nestled between the mountains, there lived a curious child.",
    "Ultimately, the answer depends on your goals and the resources you have available.",
    "The stars whispered secrets to anyone patient enough to listen.",
    "Consider breaking the problem into smaller steps and tackling them one at a time.",
    "I hope this helps, and feel free to ask if you have any other questions.",
    "Life is like a journey, full of unexpected turns and quiet lessons.",
    "A metaphor for time: it is a weaver, threading our days into a tapestry.",
    "Start with a clear plan, then adjust as you learn more along the way.",
]


def make_run(root: Path, n_systems: int = 25, n_prompts: int = 100, samples: int = 3, seed: int = 0) -> RunConfig:
    """A real run folder (config.yaml + store.sqlite) with synthetic answers and unit vectors."""
    rng = np.random.default_rng(seed)
    systems = [System(name=f"{VENDORS[k % len(VENDORS)].split('/')[1]}-{k:02d}",
                      model=f"{VENDORS[k % len(VENDORS)]}-v{k}",
                      params={"temperature": 1.0, "min_p": 0.1} if k % 5 == 4 else {"top_p": 0.9})
               for k in range(n_systems)]
    config = RunConfig(name="bench-report", prompts="prompts.jsonl", samples=samples, systems=systems,
                       results_dir=str(root))
    save_run_config(config)
    system_dirs = rng.standard_normal((n_systems, D))
    system_dirs /= np.linalg.norm(system_dirs, axis=1, keepdims=True)
    system_weight = rng.uniform(0.05, 0.35, n_systems)
    with Store(config.store_path) as store:
        for s in systems:
            store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
        store.add_prompts([Prompt(f"p{p:03d}", f"Write a short metaphor about time, variation {p}: "
                                  + "be creative and original. " * (1 + p % 3)) for p in range(n_prompts)])
        responses, vectors = [], {}
        for p in range(n_prompts):
            base = rng.standard_normal(D)
            base /= np.linalg.norm(base)
            shared = rng.uniform(0.45, 0.85)          # share of variance every answer to this prompt shares
            copy = rng.random() < 0.3                 # one system repeats another's first answer verbatim
            first = {}
            for k, s in enumerate(systems):
                keep = rng.uniform(0.3, 0.95)         # how much of a system's own direction its samples share
                own = rng.standard_normal(D)
                own /= np.linalg.norm(own)
                for j in range(samples):
                    picked = rng.choice(len(SENTENCES), size=3, replace=False)
                    text = f"[{p}/{k}/{j}] " + " ".join(SENTENCES[i] for i in picked)
                    noise = rng.standard_normal(D)
                    noise /= np.linalg.norm(noise)
                    rest = 1 - shared
                    v = (np.sqrt(shared) * base + np.sqrt(rest * system_weight[k]) * system_dirs[k]
                         + np.sqrt(rest * (1 - system_weight[k])) * (np.sqrt(keep) * own + np.sqrt(1 - keep) * noise))
                    if copy and k == 1 and j == 0:
                        text, v = first[0]
                    first.setdefault(k, (text, v))
                    responses.append(Response(s.identity, f"p{p:03d}", j, text))
                    vectors[text_hash(text)] = v / np.linalg.norm(v)
        store.add_responses(responses)
        hashes = sorted(vectors)
        store.add_embeddings(config.embedder.id, hashes, np.array([vectors[h] for h in hashes], dtype=np.float32))
    return config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--systems", type=int, default=25)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the run here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        t0 = time.perf_counter()
        config = make_run(root, args.systems, args.prompts, args.samples)
        t1 = time.perf_counter()
        analyze_run(config, progress=False)
        t2 = time.perf_counter()
        page = report_run(config)
        t3 = time.perf_counter()
        print(f"{args.systems} systems x {args.prompts} prompts x {args.samples} samples "
              f"({args.systems * args.prompts * args.samples} answers)")
        print(f"build store {t1 - t0:6.1f} s   analyze_run {t2 - t1:6.1f} s   report_run {t3 - t2:6.1f} s "
              f"(target < 30 s: {'ok' if t3 - t2 < 30 else 'SLOW'})")
        print(f"report: {page} ({page.stat().st_size / 1e6:.1f} MB)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
