"""Every embedding metric at INFINITY-CHAT scale, streamed: 2,607 prompts x 25 systems x 50 samples.

3.26M responses x 384 dims would be 5 GB of float32; vectors are generated one prompt at a time and fed
to the same accumulators analyze_run uses (SimilarityAccumulator, NearDuplicateFinder), so memory holds
one prompt plus per-prompt scalars. Measured: intra and inter (per system-prompt and the pooled
matrix), the cross-prompt floor, a 1000-resample bootstrap of every per-system figure and matrix cell,
per-prompt exact near-duplicate range search (FAISS IndexFlatIP) with clusters, top-50 neighbour
diversity, and the cross-prompt template index (approximate: IVF over the first sample of each system
for each prompt, 65,175 vectors, top 1000 pairs).

Synthetic data: per prompt a shared direction, a per-(prompt, system) direction and per-sample noise
(intra ~0.67, inter ~0.41); on 20% of prompts one system's first sample nearly copies another system's
(near-duplicates), and 60 prompts share a "template" answer from system 0 (cross-prompt templates).

Targets: < 5 minutes on 2 cores, peak RSS < 4 GB.   Run: .venv/bin/python benchmarks/bench_scale.py
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from hivemind.analyze.neighbors import NearDuplicateFinder
from hivemind.analyze.similarity import SimilarityAccumulator
from hivemind.store import PromptGroup

K, S, D = 25, 50, 384
TEMPLATE_PROMPTS = 60


def prompt_groups(n_prompts: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    systems = np.repeat(np.arange(K, dtype=np.int32), S)
    samples = np.tile(np.arange(S, dtype=np.int32), K)
    template = rng.standard_normal(D, dtype=np.float32)
    template_prompts = set(rng.choice(n_prompts, size=min(TEMPLATE_PROMPTS, n_prompts), replace=False).tolist())
    for p in range(n_prompts):
        base = rng.standard_normal(D, dtype=np.float32)
        per_system = rng.standard_normal((K, D), dtype=np.float32) * 0.8
        v = rng.standard_normal((K * S, D), dtype=np.float32) * 0.9
        v += per_system[systems]
        v += base
        if rng.random() < 0.2:        # system a's first sample nearly copies system b's first sample
            a, b = rng.choice(K, size=2, replace=False)
            v[a * S] = v[b * S] + 0.05 * rng.standard_normal(D, dtype=np.float32)
        if p in template_prompts:
            v[0] = template * 4 + rng.standard_normal(D, dtype=np.float32) * 0.3
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        yield PromptGroup(f"p{p}", systems, v, [], samples)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=2607)
    args = parser.parse_args()
    n = args.prompts
    print(f"scale: {n:,} prompts x {K} systems x {S} samples x {D} dims = {n * K * S:,} responses (streamed)")
    start = time.perf_counter()
    sim = SimilarityAccumulator(K)
    near = NearDuplicateFinder(K, threshold=0.9, n_neighbors=50, template_samples=1, keep_texts=False)
    t_gen = t_sim = t_near = 0.0
    clock = time.perf_counter()
    for group in prompt_groups(n):
        t0 = time.perf_counter()
        t_gen += t0 - clock
        sim.add(group)
        t1 = time.perf_counter()
        near.add(group)
        clock = time.perf_counter()
        t_sim += t1 - t0
        t_near += clock - t1
    t0 = time.perf_counter()
    stats = sim.finish()
    inter = stats.inter_matrix()
    summary = stats.intra_summary()
    t1 = time.perf_counter()
    ci = stats.bootstrap(n=1000, seed=0)
    t2 = time.perf_counter()
    result = near.finish(max_templates=1000)
    t3 = time.perf_counter()
    total = t3 - start
    print(f"stream: generate vectors {t_gen:.1f} s | intra/inter/floor accumulate {t_sim:.1f} s | "
          f"near-duplicate range search + neighbour diversity + template sample {t_near:.1f} s")
    print(f"finish: matrices {t1 - t0:.2f} s | bootstrap 1000 x {n} prompts {t2 - t1:.2f} s | "
          f"cross-prompt template index {t3 - t2:.1f} s ({result.template_index})")
    off = ~np.eye(K, dtype=bool)
    print(f"results: mean intra {summary.mean.mean():.3f}, mean inter (off-diagonal) {inter[off].mean():.3f}, "
          f"floor {stats.floor:.4f}, widest inter CI {np.max(ci.inter_high - ci.inter_low):.4f}, "
          f"near-duplicate pairs {len(result.near_duplicates.similarity):,} in {len(result.clusters):,} clusters, "
          f"mean distinct systems among top-50 neighbours {np.mean(result.mean_distinct_neighbors):.2f}, "
          f"template pairs {len(result.templates.similarity):,}")
    rss = peak_rss_mb()
    print(f"total wall time {total:.1f} s ({total / 60:.2f} min; target < 5 min: {'yes' if total < 300 else 'NO'}); "
          f"peak RSS {rss:,.0f} MB (ru_maxrss; target < 4 GB: {'yes' if rss < 4096 else 'NO'})")


if __name__ == "__main__":
    main()
