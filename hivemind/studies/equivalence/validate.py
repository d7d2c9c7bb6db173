"""`hivemind validate`: equivalence methods against labelled answer sets (NoveltyBench's format), side by side.

Per method, every figure is out of sample: methods with something to fit (a line, a pair model) are fitted on
4 of 5 folds of prompts and measured on the fifth (folds grouped by prompt, never by pair, so no prompt's answers
are on both sides). The figures:
- per-set class count: Pearson r and mean absolute error of the method's count (NoveltyBench's greedy partition,
  "same" = score >= the method's line) against the labels' count;
- pairs: AUC of the method's score for "same class?" over every pair within a set, and F1 / accuracy at its line;
- systems: Spearman's rho between the systems' mean counts and the labels'.
CIs: percentile bootstrap over prompts (resampled with replacement, every figure recomputed).

Methods: `embedding` (cosine, line fitted per fold), `learned` (the pair model retrained per fold by
hivemind.studies.equivalence.train, its line chosen per fold), `shipped` (the pair model and line shipped with
the package, as they are: on the data it was trained on this is in-sample, and says so), `embedding-floor` (the
method `embedding` as analysis uses it, floor + IDEA_RESCALED (1 - floor), the floor the mean cosine of answers
to different prompts: nothing fitted here, IDEA_RESCALED was chosen on this data).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hivemind.analyze.diversity import idea_threshold
from hivemind.analyze.equivalence import greedy_partition, shipped_model
from hivemind.core.stats import spearman
from hivemind.studies.equivalence.labelled import LabelledSet, embed_sets, load_labelled
from hivemind.studies.equivalence.train import FOLDS, choose_line, fit, folds, probability_matrices, set_pairs

METHODS = ("embedding", "learned", "shipped", "embedding-floor")
BOOTSTRAP = 200


@dataclass
class Scored:
    """One method's out-of-sample scores: per set, its score matrix and the line it was judged at."""
    method: str
    matrices: list[np.ndarray]
    lines: list[float]
    note: str = ""


def cosine(s: LabelledSet) -> np.ndarray:
    return s.vectors @ s.vectors.T


def fitted_per_fold(sets: list[LabelledSet], method: str, seed: int = 0) -> Scored:
    """Scores and lines fitted on the other folds' prompts."""
    fold = folds(sets, seed=seed)
    matrices: list = [None] * len(sets)
    lines: list = [None] * len(sets)
    for k in range(FOLDS):
        train = [s for s in sets if fold[s.prompt_id] != k]
        if method == "embedding":
            score = cosine
            train_mats = [score(s) for s in train]
            upper = np.concatenate([m[np.triu_indices(len(m), 1)] for m in train_mats])
            candidates = np.quantile(upper, np.linspace(0.02, 0.98, 49))
        else:
            pairs = [set_pairs(s) for s in train]
            model = fit(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]), seed)
            score = lambda s, model=model: probability_matrices(model, [s])[0]   # noqa: E731
            train_mats = probability_matrices(model, train)
            candidates = np.round(np.linspace(0.05, 0.95, 37), 3)
        line = choose_line(train_mats, np.array([s.n_classes for s in train]), candidates)
        for i, s in enumerate(sets):
            if fold[s.prompt_id] == k:
                matrices[i], lines[i] = score(s), line
    return Scored(method, matrices, lines, f"fitted on 4 of {FOLDS} folds of prompts, measured on the fifth")


def floor_line(sets: list[LabelledSet], seed: int = 0) -> float:
    """The `embedding` method's line: floor + IDEA_RESCALED (1 - floor), floor = mean cosine of answers to
    different prompts
    (estimated from 20,000 random cross-prompt pairs)."""
    rng = np.random.default_rng(seed)
    vectors = np.concatenate([s.vectors for s in sets])
    prompts = np.concatenate([[s.prompt_id] * len(s.texts) for s in sets])
    a, b = rng.integers(0, len(vectors), 20_000), rng.integers(0, len(vectors), 20_000)
    keep = prompts[a] != prompts[b]
    return idea_threshold(float(np.mean(np.sum(vectors[a[keep]] * vectors[b[keep]], axis=1))))


def score_method(sets: list[LabelledSet], method: str, seed: int = 0) -> Scored:
    if method in ("embedding", "learned"):
        return fitted_per_fold(sets, method, seed)
    if method == "shipped":
        model = shipped_model()
        return Scored(method, probability_matrices(model, sets), [model.threshold] * len(sets),
                      f"as shipped ({model.trained_on}); in-sample where that is this data")
    if method == "embedding-floor":
        line = floor_line(sets, seed)
        return Scored(method, [cosine(s) for s in sets], [line] * len(sets), f"line {line:.3f}, nothing fitted")
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


@dataclass
class PerSet:
    """What the figures are computed from, one entry per set."""
    prompt: np.ndarray          # prompt id per set
    system: np.ndarray
    count: np.ndarray           # the method's class count
    truth: np.ndarray           # the labels' class count
    pair_scores: list[np.ndarray]
    pair_labels: list[np.ndarray]
    pair_calls: list[np.ndarray]


def per_set(sets: list[LabelledSet], scored: Scored) -> PerSet:
    counts, scores, labels, calls = [], [], [], []
    for s, m, line in zip(sets, scored.matrices, scored.lines):
        counts.append(greedy_partition(len(m), lambda i, later, m=m, line=line: m[i, later] >= line).max() + 1)
        upper = np.triu_indices(len(m), 1)
        scores.append(m[upper])
        labels.append(s.same()[upper])
        calls.append(m[upper] >= line)
    return PerSet(np.array([s.prompt_id for s in sets]), np.array([s.system for s in sets]), np.array(counts),
                  np.array([s.n_classes for s in sets]), scores, labels, calls)


def figures(p: PerSet, take: np.ndarray) -> dict[str, float]:
    """Every figure over the sets `take` (indexes, repeats allowed)."""
    from sklearn.metrics import roc_auc_score

    count, truth = p.count[take], p.truth[take]
    scores = np.concatenate([p.pair_scores[i] for i in take])
    labels = np.concatenate([p.pair_labels[i] for i in take])
    calls = np.concatenate([p.pair_calls[i] for i in take])
    tp = float(np.sum(calls & labels))
    f1 = 2 * tp / max(float(calls.sum() + labels.sum()), 1.0)
    systems = sorted(set(p.system[take]))
    means = [(count[p.system[take] == s].mean(), truth[p.system[take] == s].mean()) for s in systems]
    return {"count_pearson": float(np.corrcoef(count, truth)[0, 1]) if count.std() and truth.std() else np.nan,
            "count_mae": float(np.abs(count - truth).mean()),
            "pair_auc": float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else np.nan,
            "pair_f1": f1, "pair_accuracy": float(np.mean(calls == labels)),
            "system_spearman": spearman([a for a, _ in means], [b for _, b in means])}


def bootstrap(p: PerSet, n: int, seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% percentile CIs of every figure, prompts resampled with replacement."""
    prompts = np.unique(p.prompt)
    by_prompt = {q: np.flatnonzero(p.prompt == q) for q in prompts}
    rng = np.random.default_rng(seed)
    draws = [figures(p, np.concatenate([by_prompt[q] for q in rng.choice(prompts, len(prompts))]))
             for _ in range(n)]
    return {k: (float(np.nanpercentile([d[k] for d in draws], 2.5)),
                float(np.nanpercentile([d[k] for d in draws], 97.5)))
            for k in draws[0]} if draws else {}


def validate(data: Path, methods: tuple[str, ...] = METHODS, n_bootstrap: int = BOOTSTRAP, seed: int = 0,
             progress: bool = True) -> pd.DataFrame:
    """One row per method: each figure and its CI (columns <figure>, <figure>_ci_low, <figure>_ci_high)."""
    sets = load_labelled(data)
    embed_sets(sets, progress=progress)
    rows = []
    for method in methods:
        scored = score_method(sets, method, seed)
        p = per_set(sets, scored)
        row = {"method": method, **figures(p, np.arange(len(sets)))}
        for name, (low, high) in bootstrap(p, n_bootstrap, seed).items():
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = low, high
        row["note"] = scored.note
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["sets"], frame.attrs["prompts"] = len(sets), len({s.prompt_id for s in sets})
    return frame


def markdown(frame: pd.DataFrame) -> str:
    """The side-by-side table, each figure with its 95% CI."""
    names = {"count_pearson": "class count r", "count_mae": "class count MAE", "pair_auc": "pair AUC",
             "pair_f1": "pair F1", "pair_accuracy": "pair accuracy", "system_spearman": "system rho"}
    lines = ["| method | " + " | ".join(names.values()) + " |", "|---" * (len(names) + 1) + "|"]
    for _, row in frame.iterrows():
        cells = [f"{row[k]:.3f} [{row[k + '_ci_low']:.2f}, {row[k + '_ci_high']:.2f}]" for k in names]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    sets, prompts = frame.attrs.get("sets"), frame.attrs.get("prompts")
    notes = [f"- {row['method']}: {row['note']}" for _, row in frame.iterrows()]
    return "\n".join([f"{sets} labelled sets over {prompts} prompts; 95% CIs: bootstrap over prompts", "", *lines,
                      "", *notes])
