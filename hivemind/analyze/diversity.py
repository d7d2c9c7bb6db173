"""Diversity that sees meaning and quality: Vendi score, distinct ideas, effective diversity, utility, and
lexical diversity within each (system, prompt).

Every metric is computed per (system, prompt) answer set, then averaged per system over prompts (with a
bootstrap over prompts, the resampling of similarity.py), and once per prompt over the pooled answers of
all real systems (the "hivemind" view). Vectors are L2-normalised rows, so a dot product is a cosine.

Vendi score (Friedman & Dieng 2023). With K the n x n cosine kernel (K_ii = 1) and lambda_i the
eigenvalues of K / n (non-negative, summing to trace(K) / n = 1), VS = exp(-sum_i lambda_i log lambda_i):
the exponential of the Shannon entropy of the spectrum, an effective number of distinct answers between
1 (all identical) and n (all orthogonal). With X the n x d matrix of rows, K = X X^T. X X^T and X^T X
share their non-zero eigenvalues (if X^T X v = mu v with mu != 0 then X X^T (X v) = mu (X v) and X v != 0),
and zero eigenvalues add nothing to the entropy (0 log 0 = 0), so when d < n we take the eigenvalues of
the d x d matrix X^T X / n instead: O(n d^2 + d^3) instead of O(n^2 d + n^3).

Distinct ideas (NoveltyBench's distinct_k, Zhang et al. 2025). The answers, in sample order, are
partitioned into equivalence classes: an answer joins the first earlier class whose *first* member
(its representative) it matches, else it opens a class; NoveltyBench's partition algorithm with
"equivalent" decided by the run's equivalence method (hivemind.analyze.equivalence: by default a pair model
trained on NoveltyBench's labels). distinct = number of classes. With the `embedding` method, "equivalent" =
cosine >= t, t = floor + IDEA_RESCALED * (1 - floor): a rescaled similarity of 0.84 above the floor (mean
cosine of answers to different prompts), so embedders with different raw cosine levels split ideas alike.

Effective diversity (Shypula et al. 2025): the mean pairwise cosine distance over all n (n - 1) ordered
pairs of a set, where a pair counts only when both answers pass the quality gate (g_i in {0, 1}):
    ED = sum_{i != j} g_i g_j (1 - cos_ij) / (n (n - 1)).
Failing answers contribute nothing but still count in the denominator, so an all-failing set scores 0 and
a set of verbatim copies scores 0. With S = sum of passing vectors and m passing answers it is exact from
sums: sum_{i != j, both pass} cos_ij = ||S||^2 - sum_{pass} ||v_i||^2, so ED = (m (m - 1) - ||S||^2 +
sum_pass ||v_i||^2) / (n (n - 1)).

Effective distinctness (for runs with one answer per system and prompt, where a set has no pairs): the
mean cosine distance of a system's passing answers to the other real systems' answers to the same prompt,
    EDx = sum_{i in A} g_i sum_{j in B} (1 - cos_ij) / (|A| |B|) = (m |B| - S_gate . S_B) / (|A| |B|).

Utility (NoveltyBench, patience p = 0.8): in sample order, answer i earns its quality q_i (here the gate,
0 or 1) only when it opens a new class; U = (1 - p) / (1 - p^n) * sum_i p^(i - 1) new_i q_i, in [0, 1].

Lexical, per prompt and length-controlled: each answer is cut to its first LEXICAL_WORDS words; distinct-n
= distinct n-grams / all n-grams over the cut answers of one set (n-grams never cross answers); compression
ratio = raw / zlib size of the cut answers joined. Averaged over prompts, so vocabulary across topics and
answer length no longer move the figure.

Blank answers and failed requests (each a "failure" below: an answer whose text is empty or whitespace, or a
request stored as a permanent error, text NULL). A failure was asked for and came back with nothing, so it
is an answer that fails the quality gate, g_i = 0, never an answer that was not asked for. Dropping it
instead would let a system that answers twice and fails once score as if it had been asked twice, with a
100% pass rate; reasoning models that spend max_tokens on thinking return exactly such blanks. A failure
has no meaningful embedding (its vector is ignored), so:
- pass rate = passing / n, n = every stored answer of the set, failures included.
- effective diversity: a failure is in n (the denominator n (n - 1)) with g_i = 0, so every pair with a
  failure counts 0: two passing answers at distance d (1 - cos) and one blank give 2 d / (3 * 2) = d / 3,
  where the two answers alone would give d.
- effective distinctness: a failure of A is in |A| with g_i = 0; B holds the other systems' real answers
  only (a failure of another system said nothing to be distinct from).
- utility (NoveltyBench: a failed generation has quality 0): a failure keeps its place in sample order and
  counts in n (the normaliser (1 - p) / (1 - p^n)), opens a class of its own and earns q_i = 0.
- distinct ideas: classes among the real answers (a failure is no idea); 0 when every answer failed.
- Vendi score and the lexical figures measure the real answers only (NaN when every answer failed): they
  are not quality-gated, and a blank has no embedding or words. So do intra, inter, near-duplicates and
  shared phrases (hivemind.analyze.passes), which report how many failures they left out (n_failed).
- the pooled view: the same per prompt over all real systems' answers (pooled_n counts failures,
  pooled_failed says how many).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

from hivemind.analyze.equivalence import EmbeddingLine, Equivalence, VerdictEquivalence
from hivemind.analyze.phrases import WORD, fast_words
from hivemind.analyze.similarity import nanpercentile, ratio, resample_weights
from hivemind.core.stats import nanmean as _nanmean

PATIENCE = 0.8               # NoveltyBench's default
IDEA_RESCALED = 0.84         # same idea (method `embedding`): rescaled cosine >= 0.84 above the floor; chosen
                             # against NoveltyBench's labels (best class-count agreement; 0.8 before)
LEXICAL_WORDS = 50           # words kept per answer for the per-prompt lexical figures


# Single-set metrics (the reference definitions; the accumulator batches them) -----------------------
def vendi_score(x: np.ndarray) -> float:
    """exp(entropy of the eigenvalues of K / n), K = X X^T the cosine kernel; via X^T X / n when d < n."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    if n == 0:
        return float("nan")
    gram = (x.T @ x if d < n else x @ x.T) / n
    return entropy_exp(np.linalg.eigvalsh(gram))


def entropy_exp(eigenvalues: np.ndarray) -> np.ndarray | float:
    """exp(-sum lambda log lambda) over the last axis, negative round-off and zeros dropped."""
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    lam = lam / np.maximum(lam.sum(axis=-1, keepdims=True), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(lam > 1e-12, lam * np.log(lam), 0.0)
    return np.exp(-terms.sum(axis=-1))


def partition(x: np.ndarray, threshold: float) -> np.ndarray:
    """NoveltyBench's partition: class label per row. The first unassigned answer opens a class and claims
    every later unassigned answer with cosine >= threshold to it (so an answer joins the first earlier
    class whose representative it matches). One vectorised step per class, not per answer."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    labels = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return labels
    close = (x @ x.T) >= np.float32(threshold)
    unassigned = np.ones(n, dtype=bool)
    classes = 0
    for i in range(n):          # every earlier answer is assigned already, so "unassigned" means "later"
        if not unassigned[i]:
            continue
        members = unassigned & close[i]
        members[i] = True
        labels[members] = classes
        unassigned[members] = False
        classes += 1
    return labels


def utility(labels: np.ndarray, quality: np.ndarray, patience: float = PATIENCE) -> float:
    """Patience-weighted quality of the answers that open a new class, normalised to [0, 1]."""
    n = len(labels)
    if n == 0:
        return float("nan")
    new = np.zeros(n, dtype=bool)
    _, first = np.unique(labels, return_index=True)
    new[first] = True
    weights = patience ** np.arange(n)
    norm = (1 - patience) / (1 - patience ** n) if patience < 1 else 1.0 / n
    return float(norm * np.sum(weights * new * np.asarray(quality, dtype=np.float64)))


def effective_diversity(x: np.ndarray, passed: np.ndarray) -> float:
    """Shypula et al.: mean over ordered pairs of (1 - cos), pairs with a failing answer count as 0."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2:
        return float("nan")
    g = np.asarray(passed, dtype=np.float64)
    s = g @ x
    m = g.sum()
    sq = float(g @ np.einsum("ij,ij->i", x, x))
    return float((m * (m - 1) - (s @ s - sq)) / (n * (n - 1)))


def lexical(texts: list[str], n_words: int = LEXICAL_WORDS) -> tuple[float, float]:
    """(distinct-2, compression ratio) of one answer set, each answer cut to its first n_words words."""
    cut = [first_words(t, n_words) for t in texts]
    seen: set[tuple[str, str]] = set()
    total = 0
    for toks in cut:
        seen.update(zip(toks, toks[1:]))
        total += max(len(toks) - 1, 0)
    distinct = len(seen) / total if total else float("nan")
    raw = "\n".join(" ".join(toks) for toks in cut).encode("utf-8")
    compression = len(raw) / len(zlib.compress(raw, 9)) if raw else float("nan")
    return distinct, compression


def first_words(text: str, n: int) -> list[str]:
    """phrases.words(text)[:n] without scanning the rest of a long answer: the first n * 8 characters
    usually hold more than n words (English averages about 6 characters a word with its space); when they
    do not (and there is more text), scan it all. More than n words found means the n-th was not cut."""
    head = fast_words(text[:n * 8])
    if len(head) > n or len(text) <= n * 8:
        return head[:n]
    return [m.group() for m in islice(WORD.finditer(text.lower()), n)]


# The streaming accumulator -------------------------------------------------------------------------
PER_CELL = ["vendi", "distinct_ideas", "distinct_ideas_share", "effective_diversity", "effective_distinctness",
            "utility", "pass_rate", "distinct_2_per_prompt", "compression_per_prompt"]
POOLED = ["pooled_vendi", "pooled_distinct_ideas", "pooled_effective_diversity", "pooled_n", "pooled_failed"]


@dataclass
class DiversityStats:
    prompt_ids: list[str]
    counts: np.ndarray              # (P, K) answers per cell, blank answers and failed requests included
    failed: np.ndarray              # (P, K) of which blank answers and failed requests
    cells: dict[str, np.ndarray]    # metric -> (P, K), NaN where undefined
    pooled: dict[str, np.ndarray]   # metric -> (P,), over the real systems' answers together
    threshold: float                # the embedding line (NaN for other equivalence methods)
    equivalence: str = "embedding"  # the equivalence method's id (hivemind.analyze.equivalence)
    labels: list = field(default_factory=list)   # (prompt_id, system index, sample, class) per answer

    def system_means(self) -> dict[str, np.ndarray]:
        """metric -> (K,): the mean over the prompts where the metric is defined."""
        return {name: np.array([_nanmean(col) for col in values.T]) for name, values in self.cells.items()}

    def bootstrap(self, metric: str, n: int = 1000, seed: int = 0, level: float = 0.95
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Percentile CI over prompts (resampled with replacement, the similarity bootstrap's weights)."""
        values = self.cells[metric]
        defined = ~np.isnan(values)
        weights = resample_weights(len(self.prompt_ids), n, seed)
        means = ratio(weights @ np.where(defined, values, 0.0), weights @ defined.astype(np.float64))
        return nanpercentile(means, 100 * (1 - level) / 2), nanpercentile(means, 100 * (1 + level) / 2)


class DiversityAccumulator:
    """Streams PromptGroups with a per-answer gate. Systems >= n_real (controls) are measured but never
    enter the pooled view or another system's effective distinctness."""

    def __init__(self, n_systems: int, n_real: int, threshold: float | None = None, patience: float = PATIENCE,
                 lexical_words: int = LEXICAL_WORDS, equivalence: Equivalence | None = None,
                 system_ids: list[str] | None = None, prompt_texts: dict[str, str] | None = None,
                 pooled: bool = True):
        """`equivalence` judges "same idea" for distinct ideas and utility (default: cosine >= `threshold`);
        `system_ids` name the systems in the keys stored verdicts are looked up by; `prompt_texts` give the
        learned method each set's question; `pooled` False skips the pooled view (NaN)."""
        self.n_systems, self.n_real = n_systems, n_real
        self.equivalence = equivalence if equivalence is not None else EmbeddingLine(float(threshold))
        self.threshold = self.equivalence.threshold if isinstance(self.equivalence, EmbeddingLine) else float("nan")
        self.patience, self.lexical_words, self.with_pooled = patience, lexical_words, pooled
        self.system_ids = system_ids or [str(k) for k in range(n_systems)]
        self.prompt_texts = prompt_texts or {}
        self.labels: list[tuple[str, int, int, int]] = []
        self.prepared = None        # the current prompt's features, for methods that prepare them (prepare)
        self.prompt_ids: list[str] = []
        self.counts: list[np.ndarray] = []
        self.failed: list[np.ndarray] = []
        self.rows: dict[str, list[np.ndarray]] = {name: [] for name in PER_CELL}
        self.pooled: dict[str, list[float]] = {name: [] for name in POOLED}

    def add(self, group, passed: np.ndarray, failed: np.ndarray | None = None) -> None:
        """One prompt's answers. `failed` marks blank answers and failed requests (their vectors are ignored):
        they count in n as answers failing the gate and are left out of every embedding-only figure (the
        module docstring derives where each metric puts them)."""
        systems = np.asarray(group.systems)
        x = np.asarray(group.vectors, dtype=np.float32)
        failed = np.zeros(len(systems), dtype=bool) if failed is None else np.asarray(failed, dtype=bool)
        passed = np.asarray(passed, dtype=bool) & ~failed
        order = np.argsort(group.sample_numbers, kind="stable")
        order = order[np.argsort(systems[order], kind="stable")]       # by system, then sample
        systems, x, passed, failed = systems[order], x[order], passed[order], failed[order]
        x = np.where(failed[:, None], np.float32(0.0), x)              # a failure adds nothing to any sum
        texts = [group.texts[i] for i in order] if group.texts else []
        samples = np.asarray(group.sample_numbers)[order]
        prompt = self.prompt_texts.get(group.prompt_id, "")
        self.prepared = self.prepare(x, texts, failed, prompt)
        k = self.n_systems
        counts = np.bincount(systems, minlength=k)
        row = {name: np.full(k, np.nan) for name in PER_CELL}
        real = systems < self.n_real
        g = passed.astype(np.float64)
        x64 = x.astype(np.float64)
        real_sum = x64[real].sum(axis=0)
        real_answers = np.bincount(systems[~failed], minlength=k)[:self.n_real]   # B: real answers only
        bounds = np.concatenate(([0], np.cumsum(counts)))
        vendi_sets = []
        for s in np.flatnonzero(counts):
            a, b = bounds[s], bounds[s + 1]
            xs, gs, ok = x64[a:b], g[a:b], ~failed[a:b]
            n = b - a
            if ok.any():
                vendi_sets.append((s, xs[ok]))
            found = self.partition_cell(group.prompt_id, s, x[a:b][ok], texts[a:b] if texts else [],
                                        samples[a:b], ok, prompt, (a, b))
            ideas = int(found.max() + 1) if len(found) else 0          # a failure is no idea
            labels = failure_labels(found, ok)
            self.labels += [(group.prompt_id, int(s), int(n_), int(c)) for n_, c in zip(samples[a:b], labels)]
            row["distinct_ideas"][s] = ideas
            row["distinct_ideas_share"][s] = ideas / n
            row["utility"][s] = utility(labels, gs, self.patience)
            row["pass_rate"][s] = gs.mean()
            if n >= 2:
                row["effective_diversity"][s] = effective_diversity(xs, gs)
            others_n = int(real_answers.sum() - (real_answers[s] if s < self.n_real else 0))
            if others_n:
                others = real_sum - (xs.sum(axis=0) if s < self.n_real else 0.0)
                row["effective_distinctness"][s] = (gs.sum() * others_n - (gs @ xs) @ others) / (n * others_n)
            if texts and ok.any():
                row["distinct_2_per_prompt"][s], row["compression_per_prompt"][s] = lexical(
                    [t for t, keep in zip(texts[a:b], ok) if keep], self.lexical_words)
        for s, value in zip([s for s, _ in vendi_sets], vendi_batch([v for _, v in vendi_sets])):
            row["vendi"][s] = value
        xr, gr, ok_r = x64[real], g[real], ~failed[real]
        if not self.with_pooled:
            xr = xr[:0]                     # the pooled view skipped: every pooled figure NaN or 0
            ok_r = ok_r[:0]
        self.pooled["pooled_n"].append(float(len(xr)))
        self.pooled["pooled_failed"].append(float(len(xr) - ok_r.sum()))
        self.pooled["pooled_vendi"].append(vendi_score(xr[ok_r]) if ok_r.any() else float("nan"))
        self.pooled["pooled_distinct_ideas"].append(self.pooled_ideas(x[real][ok_r], texts, real, ok_r, prompt,
                                                                     group.prompt_id)
                                                    if ok_r.any() else 0.0 if len(xr) else float("nan"))
        self.prepared = None
        self.pooled["pooled_effective_diversity"].append(effective_diversity(xr, gr) if len(xr) >= 2 else float("nan"))
        self.prompt_ids.append(group.prompt_id)
        self.counts.append(counts)
        self.failed.append(np.bincount(systems[failed], minlength=k))
        for name in PER_CELL:
            self.rows[name].append(row[name])

    def prepare(self, x: np.ndarray, texts: list[str], failed: np.ndarray, prompt: str):
        """For a method that can (the learned one), the pair features of every real answer to this prompt at
        once, with each answer's row in them; each set then takes its block (the same features it would get
        alone). None for the others."""
        if not hasattr(self.equivalence, "prepare"):
            return None
        ok = ~failed
        rows = np.full(len(ok), -1, dtype=np.int64)
        rows[ok] = np.arange(int(ok.sum()))
        kept = [t for t, keep in zip(texts, ok) if keep] if texts else [""] * int(ok.sum())
        return self.equivalence.prepare(x[ok], kept, prompt), rows

    def partition_cell(self, prompt_id: str, system: int, x: np.ndarray, texts: list[str], samples: np.ndarray,
                       ok: np.ndarray, prompt: str, span: tuple[int, int] = (0, 0)) -> np.ndarray:
        """Classes of one (system, prompt) set's real answers, in sample order (`span`: its place in the prompt's
        answers, for the prepared features)."""
        if self.prepared is not None:
            features, rows = self.prepared
            return self.equivalence.partition_features(features.subset(rows[span[0]:span[1]][ok]))
        kept = [t for t, keep in zip(texts, ok) if keep] if texts else [""] * int(ok.sum())
        keys = [(self.system_ids[system], prompt_id, int(n)) for n in samples[ok]]
        return self.equivalence.partition(x, kept, keys=keys, prompt=prompt)

    def pooled_ideas(self, x: np.ndarray, texts: list[str], real: np.ndarray, ok: np.ndarray, prompt: str,
                     prompt_id: str = "") -> float:
        """Distinct ideas among every real system's answers to one prompt; NaN for methods decided pair by pair
        within one system's set (a judge or classifier is never asked across systems). Partitions made before
        (analyze.partitions.KnownPartitions) give their count."""
        if isinstance(self.equivalence, VerdictEquivalence):
            return float("nan")
        if hasattr(self.equivalence, "pooled_ideas"):
            return self.equivalence.pooled_ideas(prompt_id)
        if self.prepared is not None:
            features, rows = self.prepared
            return float(self.equivalence.partition_features(features.subset(rows[real][ok])).max() + 1)
        kept = [t for t, r in zip(texts, real) if r] if texts else [""] * int(real.sum())
        kept = [t for t, keep in zip(kept, ok) if keep]
        return float(self.equivalence.partition(x, kept, prompt=prompt).max() + 1)

    def finish(self) -> DiversityStats:
        empty = np.zeros((0, self.n_systems), dtype=np.int64)
        return DiversityStats(
            prompt_ids=list(self.prompt_ids), counts=np.vstack(self.counts) if self.counts else empty,
            failed=np.vstack(self.failed) if self.failed else empty,
            cells={name: np.vstack(v) if v else np.zeros((0, self.n_systems)) for name, v in self.rows.items()},
            pooled={name: np.array(v, dtype=np.float64) for name, v in self.pooled.items()},
            threshold=self.threshold, equivalence=self.equivalence.id, labels=list(self.labels))


def failure_labels(labels: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Class labels for a whole answer set in sample order, given the partition of its real answers (`ok`):
    every failure gets a class of its own, numbered after the real ones, so it never becomes the first
    member of a real class; its quality is 0, so it earns no utility either way."""
    out = np.empty(len(ok), dtype=np.int64)
    out[ok] = labels
    start = int(labels.max() + 1) if len(labels) else 0
    out[~ok] = start + np.arange(int((~ok).sum()))
    return out


def vendi_batch(sets: list[np.ndarray]) -> list[float]:
    """Vendi scores of many sets: sets of one shape share one batched eigendecomposition."""
    out = [float("nan")] * len(sets)
    by_shape: dict[tuple, list[int]] = {}
    for i, x in enumerate(sets):
        by_shape.setdefault(x.shape, []).append(i)
    for (n, d), idx in by_shape.items():
        stack = np.stack([sets[i] for i in idx])
        gram = (np.swapaxes(stack, 1, 2) @ stack if d < n else stack @ np.swapaxes(stack, 1, 2)) / n
        for i, value in zip(idx, np.atleast_1d(entropy_exp(np.linalg.eigvalsh(gram)))):
            out[i] = float(value)
    return out


def idea_threshold(floor: float | None) -> float:
    """Same-idea cosine for this run and embedder: a rescaled similarity of IDEA_RESCALED above its floor."""
    base = 0.0 if floor is None else max(float(floor), 0.0)
    return base + IDEA_RESCALED * (1.0 - base)
