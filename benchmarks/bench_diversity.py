"""Every new diversity metric at the paper's scale: 25 systems x 100 prompts x 50 samples x 384 dims.

Synthetic clustered vectors (a per-prompt shared direction, a per-(prompt, system) direction and noise,
so intra ~0.6-0.7 like real embeddings), a quality gate failing ~10% of answers at random. Times each
metric separately over all 100 prompts (2,500 (system, prompt) cells and 100 pooled sets of 1,250 answers),
then the whole DiversityAccumulator pass that analyze runs; target < 10 s on 2 cores. Also the Vendi score
from the d x d Gram matrix against the n x n kernel on the pooled sets (the speed-up the docstring derives).

Run: .venv/bin/python benchmarks/bench_diversity.py
"""
from __future__ import annotations

import os
import time

import numpy as np

from hivemind.analyze.diversity import (DiversityAccumulator, effective_diversity, entropy_exp, idea_threshold, lexical,
                                partition, utility, vendi_batch, vendi_score)
from hivemind.store import PromptGroup

K, P, S, D = 25, 100, 50, 384
WORDS = ("the a of to and in is that it for on with as was this by are be at from or an have not "
         "time sea night city light river story idea answer model music color dream garden").split()


def make_groups(seed: int = 0) -> tuple[list[PromptGroup], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    systems = np.repeat(np.arange(K, dtype=np.int32), S)
    samples = np.tile(np.arange(S, dtype=np.int32), K)
    groups, gates = [], []
    for p in range(P):
        base = rng.standard_normal(D, dtype=np.float32)
        per_system = rng.standard_normal((K, D), dtype=np.float32) * 0.8
        v = base + per_system[systems] + rng.standard_normal((K * S, D), dtype=np.float32) * 0.9
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        texts = [" ".join(rng.choice(WORDS, size=60)) for _ in range(K * S)]
        groups.append(PromptGroup(f"p{p}", systems, v, texts, samples))
        gates.append(rng.random(K * S) > 0.1)
    return groups, gates


def timed(label: str, func) -> float:
    """Wall and CPU seconds (on a shared, busy machine the CPU time is the steadier figure)."""
    start, cpu = time.perf_counter(), time.process_time()
    func()
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"  {label:<44} wall {took:7.3f} s   cpu {cpu:7.3f} s")
    return took


def cells(groups):
    for g in groups:
        for k in range(K):
            yield g.vectors[k * S:(k + 1) * S], g


def main() -> None:
    print(f"{K} systems x {P} prompts x {S} samples x {D} dims; {os.cpu_count()} CPUs visible")
    groups, gates = make_groups()
    t = idea_threshold(0.1)
    print("per metric, all prompts (2,500 cells + 100 pooled sets of 1,250):")
    timed("Vendi per cell (batched n x n, n=50)", lambda: [vendi_batch([c for c, _ in cells([g])]) for g in groups])
    timed("Vendi pooled (d x d Gram, 1,250 answers)", lambda: [vendi_score(g.vectors) for g in groups])
    timed("distinct ideas per cell + pooled", lambda: ([partition(c, t) for c, _ in cells(groups)],
                                                       [partition(g.vectors, t) for g in groups]))
    labels = [partition(c, t) for c, _ in cells(groups)]
    timed("utility per cell", lambda: [utility(lab, np.ones(S)) for lab in labels])
    timed("effective diversity per cell + pooled", lambda: (
        [effective_diversity(g.vectors[k * S:(k + 1) * S], gate[k * S:(k + 1) * S])
         for g, gate in zip(groups, gates) for k in range(K)],
        [effective_diversity(g.vectors, gate) for g, gate in zip(groups, gates)]))
    timed("lexical per cell (distinct-2, compression)",
          lambda: [lexical(g.texts[k * S:(k + 1) * S]) for g in groups for k in range(K)])

    acc = DiversityAccumulator(K, K, threshold=t)
    total = timed("whole DiversityAccumulator pass (analyze)",
                  lambda: [acc.add(g, gate) for g, gate in zip(groups, gates)] and acc.finish())
    stats = acc.finish()
    timed("bootstrap CIs, 5 metrics x 1,000 resamples",
          lambda: [stats.bootstrap(m) for m in ("vendi", "distinct_ideas", "effective_diversity",
                                                 "effective_distinctness", "utility")])
    print(f"whole pass: {total:.2f} s (target < 10 s on 2 cores)")

    pooled = groups[0].vectors.astype(np.float64)
    start = time.perf_counter()
    small = [vendi_score(g.vectors) for g in groups[:10]]
    gram_time = time.perf_counter() - start
    start = time.perf_counter()
    big = [float(entropy_exp(np.linalg.eigvalsh(g.vectors.astype(np.float64) @ g.vectors.astype(np.float64).T
                                                / len(g.vectors)))) for g in groups[:10]]
    kernel_time = time.perf_counter() - start
    print(f"Vendi on 10 pooled sets: d x d Gram {gram_time:.3f} s vs n x n kernel {kernel_time:.3f} s "
          f"({kernel_time / gram_time:.1f}x); max abs difference {max(abs(a - b) for a, b in zip(small, big)):.2e}")
    del pooled


if __name__ == "__main__":
    main()
