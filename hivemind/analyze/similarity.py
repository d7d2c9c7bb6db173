"""Intra-model repetition and inter-model similarity, exact, without enumerating pairs.

With L2-normalised vectors the mean cosine over all pairs (a in A, b in B) is the dot product of the
two sums divided by n_A * n_B, so one prompt needs only the per-system sum vectors S_k:

    inter numerator[A, B] = S_A . S_B            denominator = n_A * n_B   (self-pairs included on A == B)
    intra[k] = (||S_k||^2 - sum_i ||v_i||^2) / (n_k (n_k - 1))            (self-pairs excluded)

Subtracting the actual squared norms (not n) keeps the identity exact even for vectors that are only
normalised to float32 precision. Matrices are pooled over prompts pair-weighted (sum of numerators over
sum of denominators), so a system with more samples on some prompts is weighted by its pairs, as a
brute-force loop over all pairs would weight it.

The floor: the mean cosine between responses to *different* prompts. With T the sum of all vectors and
S_p the sum for prompt p, the cross-prompt pair sum is ||T||^2 - sum_p ||S_p||^2 over
N^2 - sum_p n_p^2 ordered pairs. Values are also reported rescaled, (x - floor) / (1 - floor), so that
0 means "as alike as answers to unrelated prompts" and 1 means identical.

Range: a cosine of unit vectors lies in [-1, 1], and so does every mean of cosines, but float32 vectors
are unit length only to ~1e-7, so sums of identical answers give 1 + 1e-7. Every cosine and mean is
clipped to [-1, 1] (`clip_cosine`). The rescaling divides by 1 - floor, which vanishes when answers to
*different* prompts are as alike as answers can be (every answer identical): within FLOOR_TOLERANCE of 1
the rescaled values are undefined (NaN, and analyze warns), never inf or huge numbers.

`SimilarityAccumulator.add(group)` consumes one PromptGroup at a time; memory is O(P * K^2) scalars.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hivemind.core.errors import HivemindError

N_BUCKETS = 10
FLOOR_TOLERANCE = 1e-6          # a floor this close to 1 leaves nothing to rescale by
BUCKET_LABELS = [f"{i / N_BUCKETS:.1f}-{(i + 1) / N_BUCKETS:.1f}" for i in range(N_BUCKETS)]


def system_sums(group_systems: np.ndarray, vectors: np.ndarray, n_systems: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-system sum vectors (K, d) float64, counts (K,), and sums of squared norms (K,).

    The store returns a system's rows together, so each system is one contiguous slice summed in
    place (a stable sort first if not); ufunc.reduceat and one-hot products measured several times
    slower. Summing <= a few thousand unit float32 vectors loses ~1e-7 relative, far below the 1e-5
    we promise; the results are widened to float64 before any products."""
    systems = np.asarray(group_systems)
    vectors = np.asarray(vectors, dtype=np.float32)
    counts = np.bincount(systems, minlength=n_systems)
    if np.any(systems[1:] < systems[:-1]):
        order = np.argsort(systems, kind="stable")
        vectors = vectors[order]
    sums = np.zeros((n_systems, vectors.shape[1]), dtype=np.float64)
    sq_sums = np.zeros(n_systems, dtype=np.float64)
    present = np.flatnonzero(counts)
    if len(present) and np.all(counts[present] == counts[present[0]]):
        # The usual design, every system with the same number of samples: one reshaped reduction.
        blocks = vectors.reshape(len(present), counts[present[0]], -1)
        sums[present] = blocks.sum(axis=1)
        sq_sums[present] = [np.vdot(block, block) for block in blocks]
        return sums, counts, sq_sums
    bounds = np.concatenate(([0], np.cumsum(counts)))
    for k in np.flatnonzero(counts):
        block = vectors[bounds[k]:bounds[k + 1]]
        sums[k] = block.sum(axis=0)
        sq_sums[k] = np.vdot(block, block)
    return sums, counts, sq_sums


@dataclass
class SimilarityStats:
    """Per-prompt scalars from which every similarity figure (and its bootstrap) is derived."""
    prompt_ids: list[str]
    counts: np.ndarray          # (P, K) int64: samples of system k for prompt p
    intra: np.ndarray           # (P, K) float64: mean pairwise cosine, NaN where counts < 2
    inter_num: np.ndarray       # (P, K, K) float64: S_A . S_B
    inter_den: np.ndarray       # (P, K, K) float64: n_A * n_B
    floor: float | None         # mean cosine of responses to different prompts; None with < 2 prompts

    @property
    def n_systems(self) -> int:
        return self.counts.shape[1]

    @property
    def valid(self) -> np.ndarray:
        """(P, K) bool: intra is defined (>= 2 samples)."""
        return self.counts >= 2

    def inter_matrix(self) -> np.ndarray:
        """(K, K) pair-weighted mean cosine; NaN only for two systems that never answered a common prompt."""
        return clip_cosine(ratio(self.inter_num.sum(axis=0), self.inter_den.sum(axis=0)))

    def prompt_homogeneity(self) -> np.ndarray:
        """(P,) mean cosine over all pairs of responses from *different* systems to the same prompt."""
        k = self.n_systems
        off = ~np.eye(k, dtype=bool)
        num = self.inter_num[:, off].sum(axis=1)
        den = self.inter_den[:, off].sum(axis=1)
        return clip_cosine(ratio(num, den))

    def intra_summary(self) -> "IntraSummary":
        valid = self.valid
        n_prompts = valid.sum(axis=0)
        # Cosines can stray below 0 or above 1 by rounding (or be truly negative); bucket them into
        # the end buckets so every defined prompt is counted exactly once.
        idx = np.clip(np.floor(np.nan_to_num(self.intra) * N_BUCKETS).astype(np.int64), 0, N_BUCKETS - 1)
        buckets = np.zeros((self.n_systems, N_BUCKETS))
        for b in range(N_BUCKETS):
            buckets[:, b] = ((idx == b) & valid).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            buckets /= n_prompts[:, None]
            intra0 = np.where(valid, self.intra, 0.0)
            mean = clip_cosine(intra0.sum(axis=0) / n_prompts)
            above_07 = ((intra0 > 0.7) & valid).sum(axis=0) / n_prompts
            above_08 = ((intra0 > 0.8) & valid).sum(axis=0) / n_prompts
        return IntraSummary(buckets=buckets, above_07=above_07, above_08=above_08, mean=mean, n_prompts=n_prompts)

    def bootstrap(self, n: int = 1000, seed: int = 0, level: float = 0.95) -> "BootstrapCI":
        """Percentile intervals from resampling prompts with replacement (seeded)."""
        mean, above, inter = self.resampled(resample_weights(len(self.prompt_ids), n, seed))
        lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
        return BootstrapCI(
            n=n, seed=seed, level=level,
            mean_low=nanpercentile(mean, lo), mean_high=nanpercentile(mean, hi),
            above_08_low=nanpercentile(above, lo), above_08_high=nanpercentile(above, hi),
            inter_low=nanpercentile(inter, lo), inter_high=nanpercentile(inter, hi),
        )

    def resampled(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Statistics of resamples given as prompt multiplicities, weights (B, P).

        Every statistic is a ratio of sums over prompts, so a resample is one matrix product:
        weights @ per-prompt numerators. Returns mean intra (B, K), share above 0.8 (B, K), and the
        inter matrix (B, K, K); NaN where a resample holds no defined value."""
        p, k = len(self.prompt_ids), self.n_systems
        valid = self.valid
        intra0 = np.where(valid, self.intra, 0.0)
        n_valid = weights @ valid.astype(np.float64)
        mean = clip_cosine(ratio(weights @ intra0, n_valid))
        above = ratio(weights @ ((intra0 > 0.8) & valid).astype(np.float64), n_valid)
        inter = clip_cosine(ratio(weights @ self.inter_num.reshape(p, k * k),
                                  weights @ self.inter_den.reshape(p, k * k)))
        return mean, above, inter.reshape(-1, k, k)

    @property
    def can_rescale(self) -> bool:
        """False with a single prompt (no floor) or a floor within FLOOR_TOLERANCE of 1 (nothing to divide by)."""
        return self.floor is not None and 1.0 - self.floor > FLOOR_TOLERANCE

    def rescale(self, values: np.ndarray) -> np.ndarray:
        """(x - floor) / (1 - floor); NaN where that is undefined (see can_rescale).

        x within FLOOR_TOLERANCE of 1 counts as 1, so identical answers rescale to exactly 1."""
        values = np.asarray(values, dtype=np.float64)
        if not self.can_rescale:
            return np.full(np.shape(values), np.nan)
        values = np.where(np.abs(values - 1.0) <= FLOOR_TOLERANCE, 1.0, clip_cosine(values))
        return (values - self.floor) / (1.0 - self.floor)


@dataclass
class IntraSummary:
    buckets: np.ndarray     # (K, 10) shares of defined prompts per bucket
    above_07: np.ndarray    # (K,)
    above_08: np.ndarray
    mean: np.ndarray
    n_prompts: np.ndarray   # (K,) prompts where intra is defined


@dataclass
class BootstrapCI:
    n: int
    seed: int
    level: float
    mean_low: np.ndarray
    mean_high: np.ndarray
    above_08_low: np.ndarray
    above_08_high: np.ndarray
    inter_low: np.ndarray
    inter_high: np.ndarray


class SimilarityAccumulator:
    """Streams PromptGroups; keeps only per-prompt scalars (counts, intra, K x K numerators)."""

    def __init__(self, n_systems: int):
        self.n_systems = n_systems
        self.prompt_ids: list[str] = []
        self.counts: list[np.ndarray] = []
        self.intra: list[np.ndarray] = []
        self.num: list[np.ndarray] = []
        self.total: np.ndarray | None = None    # T, the sum of every vector
        self.n_total = 0
        self.prompt_sq = 0.0                    # sum_p ||S_p||^2
        self.prompt_n_sq = 0                    # sum_p n_p^2

    def add(self, group) -> None:
        sums, counts, sq_sums = system_sums(group.systems, group.vectors, self.n_systems)
        gram = sums @ sums.T
        with np.errstate(invalid="ignore", divide="ignore"):
            intra = clip_cosine((np.diag(gram) - sq_sums) / (counts * (counts - 1.0)))
        intra[counts < 2] = np.nan
        prompt_sum = sums.sum(axis=0)
        self.total = prompt_sum if self.total is None else self.total + prompt_sum
        n = int(counts.sum())
        self.n_total += n
        self.prompt_sq += float(gram.sum())     # ||S_p||^2 = sum of the Gram matrix of system sums
        self.prompt_n_sq += n * n
        self.prompt_ids.append(group.prompt_id)
        self.counts.append(counts)
        self.intra.append(intra)
        self.num.append(gram)

    def finish(self) -> SimilarityStats:
        if not self.prompt_ids:
            raise HivemindError("no embedded responses to measure; run `hivemind collect` and `hivemind embed` first")
        counts = np.vstack(self.counts).astype(np.int64)
        den = counts[:, :, None].astype(np.float64) * counts[:, None, :]
        cross_pairs = self.n_total ** 2 - self.prompt_n_sq
        floor = None
        if cross_pairs > 0:
            floor = float(clip_cosine((float(self.total @ self.total) - self.prompt_sq) / cross_pairs))
        return SimilarityStats(
            prompt_ids=list(self.prompt_ids), counts=counts, intra=np.vstack(self.intra),
            inter_num=np.stack(self.num), inter_den=den, floor=floor,
        )


def resample_weights(n_prompts: int, n: int, seed: int) -> np.ndarray:
    """(n, n_prompts) float: how often each prompt is drawn in each of n resamples with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_prompts, np.full(n_prompts, 1.0 / n_prompts), size=n).astype(np.float64)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0 (an undefined mean, never a silent zero)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def clip_cosine(values):
    """Cosines and their means into [-1, 1], NaN kept: float32 rounding lets them stray by ~1e-7."""
    return np.clip(values, -1.0, 1.0)


def nanpercentile(values: np.ndarray, q: float) -> np.ndarray:
    """Percentile over resamples (axis 0), ignoring resamples where the statistic was undefined."""
    values = np.asarray(values)
    out = np.full(values.shape[1:], np.nan)
    defined = ~np.all(np.isnan(values), axis=0)
    if defined.any():
        out[defined] = np.nanpercentile(values[:, defined], q, axis=0)
    return out


def pairwise_reference(groups, n_systems: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brute force, the authors' way: for each prompt, for each pair of responses. For tests and benchmarks.

    Returns intra (P, K) with NaN where < 2 samples, the pooled inter matrix (K, K), and the floor."""
    intra_rows, num, den = [], np.zeros((n_systems, n_systems)), np.zeros((n_systems, n_systems))
    groups = list(groups)
    for group in groups:
        v = group.vectors.astype(np.float64)
        s = np.asarray(group.systems)
        intra_sum, intra_n = np.zeros(n_systems), np.zeros(n_systems)
        for i in range(len(v)):
            for j in range(len(v)):
                cos = float(v[i] @ v[j])
                num[s[i], s[j]] += cos
                den[s[i], s[j]] += 1
                if i != j and s[i] == s[j]:
                    intra_sum[s[i]] += cos
                    intra_n[s[i]] += 1
        intra_rows.append(ratio(intra_sum, intra_n))
    cross_sum, cross_n = 0.0, 0
    for a, ga in enumerate(groups):
        for b, gb in enumerate(groups):
            if a != b:
                m = ga.vectors.astype(np.float64) @ gb.vectors.astype(np.float64).T
                cross_sum += m.sum()
                cross_n += m.size
    floor = cross_sum / cross_n if cross_n else None
    return np.vstack(intra_rows), ratio(num, den), floor
