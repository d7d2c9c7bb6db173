"""The equivalence methods at the paper's scale, side by side in one run: 25 systems x 100 prompts x 50 samples
(125,000 answers with real-prose texts: bench_render.make_run's store).

Measures, on the same store:
1. the partition alone (distinct ideas of every (system, prompt) set, plus the pooled view per prompt), with
   the embedding line and with the learned pair model (the default), and the pairs each compared;
2. analyze_run end to end with each method (target: the learned default under 2 minutes; bench_render's
   analyze took 59.6 s before this change with the embedding line).
Targets (issue 18): the default equivalence over this data under 10 minutes on 2 cores.
Run: .venv/bin/python benchmarks/bench_equivalence.py [--systems 25 --prompts 100 --samples 50] [--keep DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_render import make_run  # noqa: E402

from hivemind.analyze.equivalence import EmbeddingLine, LearnedEquivalence, shipped_model  # noqa: E402
from hivemind.analyze.diversity import idea_threshold  # noqa: E402
from hivemind.analyze.stage import analyze_run  # noqa: E402
from hivemind.core.config_files import resolve_run  # noqa: E402
from hivemind.store import Store  # noqa: E402


class Counting:
    """Wraps an equivalence, counting the pairs its partition compares."""

    def __init__(self, inner):
        self.inner, self.pairs, self.id = inner, 0, inner.id

    def partition(self, x, texts, keys=None, prompt=""):
        labels = self.inner.partition(x, texts, keys=keys, prompt=prompt)
        # pairs NoveltyBench's loop compares: answer i of class c meets the c representatives before its class's,
        # and its own class's unless it is that representative (classes are numbered in representative order)
        _, first = np.unique(labels, return_index=True)
        self.pairs += int(labels.sum() + (np.arange(len(labels)) != first[labels]).sum())
        return labels


def time_partitions(config, equivalence) -> tuple[float, int, float]:
    """(seconds, pairs compared, mean classes per set) of partitioning every set and every pooled prompt."""
    counting = Counting(equivalence)
    ids = [s.identity for s in config.systems]
    classes = []
    with Store.open_readonly(config.store_path) as store:
        prompts = {p.id: p.text for p in store.prompts()}
        groups = list(store.iter_prompt_groups(config.embedder.id, ids))
    start = time.perf_counter()
    for g in groups:
        order = np.lexsort((g.sample_numbers, g.systems))
        systems = g.systems[order]
        texts = [g.texts[i] for i in order]
        bounds = np.flatnonzero(np.diff(systems)) + 1
        for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(systems)]):
            classes.append(counting.partition(g.vectors[order][a:b], texts[a:b], prompt=prompts[g.prompt_id]).max() + 1)
        counting.partition(g.vectors[order], texts, prompt=prompts[g.prompt_id])      # the pooled view
    return time.perf_counter() - start, counting.pairs, float(np.mean(classes))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--systems", type=int, default=25)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="build the store here and keep it; a store kept there before is reused")
    parser.add_argument("--skip-analyze", action="store_true")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-equivalence-"))
    start = time.perf_counter()
    if args.keep and (root / "bench-render" / "config.yaml").is_file():
        config = resolve_run(str(root / "bench-render" / "config.yaml"))     # the kept store, built before
        config.results_dir = str(root)
    else:
        config = make_run(root, args.systems, args.prompts, args.samples)
    print(f"store: {args.systems} systems x {args.prompts} prompts x {args.samples} samples in "
          f"{time.perf_counter() - start:.0f} s ({root})", flush=True)
    methods = {"embedding line": EmbeddingLine(idea_threshold(0.07)),
               "learned (default)": LearnedEquivalence(shipped_model())}
    print("| method | partition s | pairs compared | pairs/s | mean classes per set |\n|---|---|---|---|---|")
    for name, equivalence in methods.items():
        seconds, pairs, classes = time_partitions(config, equivalence)
        print(f"| {name} | {seconds:.1f} | {pairs:,} | {pairs / seconds:,.0f} | {classes:.1f} |", flush=True)
    if args.skip_analyze:
        return
    print("\n| method | analyze_run s |\n|---|---|")
    for method in ("embedding", "learned"):
        config.equivalence = config.equivalence.model_copy(update={"method": method})
        start = time.perf_counter()
        analyze_run(config, progress=False)
        print(f"| {method} | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
