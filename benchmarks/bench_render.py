"""report_run with the answer browser at the issue's scale: 25 systems x 100 prompts x 50 samples.

Mirrors bench_report.py (a real SQLite store, analyze_run's own pass, synthetic unit vectors mixed so that
intra- and inter-model similarity spread like the paper's), with realistic answer texts: every answer is
a remix of real sentences from the AlpacaEval answers to the same instruction
(../shared/data/alpaca_eval_outputs, instruction p for prompt p), drawn until it is 60-300 words long:
system k draws from the answer of AlpacaEval model k mod 16 (systems 16-24 from that model's answer to the
next instruction, so no two systems draw from one answer). So every one of the 125,000 answers is a
distinct text of real prose and a system's samples repeat its own sentences (the paper's intra-model
repetition); what systems share is what real models' answers to one instruction share. (Letting systems
draw from each other's sentences makes analyze_run's shared-phrase pass, phrases.shared_phrases, take
about 9 s of CPU per prompt: nearly every 5-gram is then shared, and the benchmark's setup would take
15 minutes.) On every prompt one system repeats another's first
answer word for word (an exact near-duplicate with identical vectors); a third of the systems have a
quality score per answer and every 7th answer stopped at the length limit (finish_reason "length").
Without the shared data the stock sentences of bench_report.py are used (and the line says so).

Targets (issue 9): the whole report_run under 30 s on 2 cores; report.html under 50 MB.
Run: .venv/bin/python benchmarks/bench_render.py [--systems 25 --prompts 100 --samples 50] [--keep DIR]
     (then --keep DIR --render-only renders the kept run again, skipping the 15-minute analyze)
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hivemind.analyze.stage import analyze_run
from hivemind.core.config import RunConfig, Scorer, System
from hivemind.core.config_files import resolve_run
from hivemind.results.record import save_run_config
from hivemind.report.stage import report_run
from hivemind.store import Prompt, Response, Score, Store, text_hash

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_report import D, SENTENCES, VENDORS  # noqa: E402

ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"
SENTENCE_END = re.compile(r"(?<=[.!?:])\s+|\n+")


def alpaca_pools(n_prompts: int) -> tuple[list[str], list[list[list[str]]]] | None:
    """Per AlpacaEval instruction (the first n): its text and, per model, the sentences of its answer
    to it and to the next instruction (models 16-31)."""
    files = sorted(ALPACA.glob("*.json"))
    if not files:
        return None
    records = [json.loads(f.read_text(encoding="utf-8"))[:n_prompts + 1] for f in files]
    records += [model[1:] for model in records]
    records[:len(files)] = [model[:n_prompts] for model in records[:len(files)]]
    instructions = [r["instruction"] for r in records[0]]
    pools = [[[s.strip() for s in SENTENCE_END.split(model[p]["output"]) if s.strip()] or SENTENCES
              for model in records] for p in range(len(instructions))]
    return instructions, pools


def remix(pools: list[list[str]], own: int, rng: np.random.Generator, borrow: float = 0.0,
          min_words: int = 60, max_words: int = 300) -> str:
    """Sentences of answer `own` (a share `borrow` from the other answers) until the text is between
    min_words and max_words long."""
    target = int(rng.integers(min_words, max_words + 1))
    out, n = [], 0
    while n < target:
        pool = pools[int(rng.integers(len(pools)))] if rng.random() < borrow else pools[own]
        sentence = pool[int(rng.integers(len(pool)))]
        out.append(sentence)
        n += len(sentence.split())
    return " ".join(out)


def make_run(root: Path, n_systems: int = 25, n_prompts: int = 100, samples: int = 50, seed: int = 0,
             real_texts: bool = True, scored_every: int = 3, truncated_every: int = 7) -> RunConfig:
    """A run folder (config.yaml + store.sqlite) with remixed real answers, unit vectors and some scores.

    System 1 repeats system 0's first answer on every prompt (same text, same vector)."""
    rng = np.random.default_rng(seed)
    loaded = alpaca_pools(n_prompts) if real_texts else None
    if loaded is not None and len(loaded[0]) < n_prompts:
        loaded = None
    systems = [System(name=f"{VENDORS[k % len(VENDORS)].split('/')[1]}-{k:02d}",
                      model=f"{VENDORS[k % len(VENDORS)]}-v{k}",
                      params={"temperature": 1.0, "min_p": 0.1} if k % 5 == 4 else {"top_p": 0.9})
               for k in range(n_systems)]
    config = RunConfig(name="bench-render", prompts="prompts.jsonl", samples=samples, systems=systems,
                       results_dir=str(root), scorers=[Scorer(name="judge", kind="imported", pass_at=6.0)])
    save_run_config(config)
    system_dirs = rng.standard_normal((n_systems, D))
    system_dirs /= np.linalg.norm(system_dirs, axis=1, keepdims=True)
    system_weight = rng.uniform(0.05, 0.35, n_systems)
    with Store(config.store_path) as store:
        for s in systems:
            store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
        store.add_prompts([Prompt(f"p{p:03d}", loaded[0][p] if loaded else f"Write a short metaphor about time, "
                                  f"variation {p}.") for p in range(n_prompts)])
        responses, scores, vectors = [], [], {}
        n = 0
        for p in range(n_prompts):
            pools = loaded[1][p] if loaded else [SENTENCES]
            base = rng.standard_normal(D)
            base /= np.linalg.norm(base)
            shared = rng.uniform(0.45, 0.85)
            first = {}
            for k, s in enumerate(systems):
                keep = rng.uniform(0.3, 0.95)
                own = rng.standard_normal(D)
                own /= np.linalg.norm(own)
                for j in range(samples):
                    text = remix(pools, k % len(pools), rng) if loaded else (
                        f"[{p}/{k}/{j}] " + " ".join(SENTENCES[i] for i in rng.choice(len(SENTENCES), 3, replace=False)))
                    noise = rng.standard_normal(D)
                    noise /= np.linalg.norm(noise)
                    rest = 1 - shared
                    v = (np.sqrt(shared) * base + np.sqrt(rest * system_weight[k]) * system_dirs[k]
                         + np.sqrt(rest * (1 - system_weight[k])) * (np.sqrt(keep) * own + np.sqrt(1 - keep) * noise))
                    if k == 1 and j == 0:
                        text, v = first[0]
                    first.setdefault(k, (text, v))
                    n += 1
                    finish = "length" if n % truncated_every == 0 else "stop"
                    responses.append(Response(s.identity, f"p{p:03d}", j, text, finish_reason=finish))
                    if k % scored_every == 0:
                        scores.append(Score(s.identity, f"p{p:03d}", j, "judge", float(rng.integers(1, 11))))
                    vectors[text_hash(text)] = v / np.linalg.norm(v)
        store.add_responses(responses)
        store.add_scores(scores)
        hashes = sorted(vectors)
        store.add_embeddings(config.embedder.id, hashes, np.array([vectors[h] for h in hashes], dtype=np.float32))
    return config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--systems", type=int, default=25)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="build the run here and keep it")
    parser.add_argument("--render-only", action="store_true", help="render the run kept in --keep again")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-render-"))
    try:
        t0 = time.perf_counter()
        if args.render_only:
            config = resolve_run("bench-render", results_dir=root)
            args.systems, args.samples = len(config.systems), config.samples
            args.prompts = len(pd.read_csv(config.run_dir / "prompt_homogeneity.csv"))
        else:
            config = make_run(root, args.systems, args.prompts, args.samples)
        t1 = time.perf_counter()
        if not args.render_only:
            analyze_run(config, progress=False)
        t2, c2 = time.perf_counter(), time.process_time()
        page = report_run(config)
        t3, c3 = time.perf_counter(), time.process_time()
        from hivemind.report.browser import gather
        t4 = time.perf_counter()
        data = gather(config)
        t5 = time.perf_counter()
        raw = len(data.serialise())
        texts = "AlpacaEval sentence remixes" if alpaca_pools(1) else "bench_report's stock sentences"
        print(f"{args.systems} systems x {args.prompts} prompts x {args.samples} samples "
              f"({args.systems * args.prompts * args.samples} answers, {len(data.texts)} distinct texts; {texts})")
        setup = "kept run, " if args.render_only else f"build store {t1 - t0:6.1f} s   analyze_run {t2 - t1:6.1f} s   "
        print(f"{setup}report_run {t3 - t2:6.1f} s "
              f"(target < 30 s: {'ok' if t3 - t2 < 30 else 'SLOW'}; CPU {c3 - c2:.1f} s, all threads; gathering the "
              f"browser data alone {t5 - t4:.1f} s)")
        size = page.stat().st_size / 1e6
        print(f"report: {page} ({size:.1f} MB, target < 50 MB: {'ok' if size < 50 else 'TOO BIG'}; "
              f"browser data before compression {raw / 1e6:.1f} MB)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
