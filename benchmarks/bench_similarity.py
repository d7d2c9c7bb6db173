"""Exactness and speed of the streaming similarity formulas at the paper's scale.

25 systems x 100 prompts x 50 samples x 384 dims (random vectors with a per-prompt shared direction and a
per-(prompt, system) direction, so intra ~0.6-0.7 and inter ~0.4-0.5, like real embeddings). The fast
path (SimilarityAccumulator, the code analyze_run uses) is compared with two pairwise references:

  pair-of-sets  for each prompt, for each pair of systems (A, B): the full |A| x |B| cosine matrix
                (one BLAS product) and its mean; intra from the same-system matrix without its diagonal.
                Vectorised, measured at full scale.
  per-pair      for each prompt, for each pair of responses (i, j): one dot product, the authors' style.
                Measured on a subset of prompts and extrapolated linearly to all of them (it is linear in
                the number of prompts), as printed.

What ratio to expect: the pair-of-sets reference does n^2 d multiply-adds per prompt (n = 1250) at BLAS
speed, the fast path n d additions at memory speed plus ~0.1 ms of Python per prompt, so against it the
ratio is tens (about n times the BLAS-vs-memory efficiency gap), not hundreds; against the per-pair loop
it is thousands. Both are printed; on a busy machine BLAS threads contend and the reference slows down
several-fold, so compare runs taken on an idle machine.

Run: .venv/bin/python benchmarks/bench_similarity.py [--loop-prompts 2]   (--loop-prompts 100: all of it, ~6 min)
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from hivemind.analyze.similarity import SimilarityAccumulator
from hivemind.store import PromptGroup

K, P, S, D = 25, 100, 50, 384


def make_groups(seed: int = 0) -> list[PromptGroup]:
    rng = np.random.default_rng(seed)
    systems = np.repeat(np.arange(K, dtype=np.int32), S)
    groups = []
    for p in range(P):
        base = rng.standard_normal(D, dtype=np.float32)
        per_system = rng.standard_normal((K, D), dtype=np.float32) * 0.8
        v = base + per_system[systems] + rng.standard_normal((K * S, D), dtype=np.float32) * 0.9
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        groups.append(PromptGroup(f"p{p}", systems, v))
    return groups


def fast(groups):
    acc = SimilarityAccumulator(K)
    for g in groups:
        acc.add(g)
    stats = acc.finish()
    return stats.intra, stats.inter_matrix()


def reference_pair_of_sets(groups):
    intra = np.full((len(groups), K), np.nan)
    num, den = np.zeros((K, K)), np.zeros((K, K))
    for p, g in enumerate(groups):
        sets = [g.vectors[g.systems == k] for k in range(K)]
        for a in range(K):
            for b in range(a, K):
                m = sets[a] @ sets[b].T
                total = float(m.sum(dtype=np.float64))
                num[a, b] += total
                den[a, b] += m.size
                if a == b:
                    n = len(sets[a])
                    intra[p, a] = (total - float(np.trace(m, dtype=np.float64))) / (n * (n - 1))
                else:
                    num[b, a] += total
                    den[b, a] += m.size
    return intra, num / den


def reference_per_pair(groups):
    intra_sum, intra_n = np.zeros((len(groups), K)), np.zeros((len(groups), K))
    num, den = np.zeros((K, K)), np.zeros((K, K))
    for p, g in enumerate(groups):
        v, s = g.vectors, g.systems.tolist()
        for i in range(len(v)):
            vi, si = v[i], s[i]
            for j in range(len(v)):
                cos = float(vi @ v[j])
                num[si, s[j]] += cos
                den[si, s[j]] += 1
                if i != j and si == s[j]:
                    intra_sum[p, si] += cos
                    intra_n[p, si] += 1
    return intra_sum / intra_n, num / den


def best_time(fn, *args, repeat=3):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop-prompts", type=int, default=2, help="prompts timed for the per-pair loop")
    args = parser.parse_args()
    groups = make_groups()
    print(f"scale: {K} systems x {P} prompts x {S} samples x {D} dims = {K * P * S:,} responses, "
          f"{P * (K * S) ** 2:,} same-prompt ordered pairs")
    t_fast, (intra, inter) = best_time(fast, groups, repeat=5)
    print(f"fast (SimilarityAccumulator, intra per system-prompt + inter matrix): {t_fast * 1e3:.1f} ms "
          f"(best of 5); mean intra {np.mean(intra):.3f}, mean inter off-diagonal "
          f"{inter[~np.eye(K, dtype=bool)].mean():.3f}")

    t_sets, (ref_intra, ref_inter) = best_time(reference_pair_of_sets, groups, repeat=3)
    err_sets = max(np.abs(intra - ref_intra).max(), np.abs(inter - ref_inter).max())
    print(f"pair-of-sets reference (BLAS per system pair, full scale, measured, best of 3): {t_sets:.2f} s; "
          f"max abs error {err_sets:.2e}; speedup {t_sets / t_fast:,.0f}x")

    subset = groups[:args.loop_prompts]
    t_loop, (loop_intra, loop_inter) = best_time(reference_per_pair, subset, repeat=1)
    fast_intra, fast_inter = fast(subset)
    err_loop = max(np.abs(fast_intra - loop_intra).max(), np.abs(fast_inter - loop_inter).max())
    t_loop_full = t_loop * P / len(subset)
    how = "measured at full scale" if len(subset) == P else f"extrapolated linearly to {P} prompts"
    print(f"per-pair loop reference (authors' style): {t_loop:.2f} s measured on {len(subset)} of {P} prompts "
          f"({len(subset) * (K * S) ** 2:,} pairs), {how}: {t_loop_full:.0f} s; "
          f"max abs error {err_loop:.2e}; speedup {t_loop_full / t_fast:,.0f}x ({how})")

    ok = err_sets < 1e-5 and err_loop < 1e-5
    print(f"exact within 1e-5: {'yes' if ok else 'NO'}; "
          f">= 500x faster than the per-pair loop: {'yes' if t_loop_full / t_fast >= 500 else 'NO'}; "
          f">= 500x faster than the pair-of-sets BLAS reference: {'yes' if t_sets / t_fast >= 500 else 'NO'}")


if __name__ == "__main__":
    main()
