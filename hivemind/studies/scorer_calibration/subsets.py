"""The subsets of the calibration study: where scorers lose the humans (similar quality, high disagreement).

Subsets, as the authors' analysis code defines them (liweijiang/artificial-hiveminds,
src/human_annotations/main_analysis_abs.py get_all_human_scores_sim_cluster and main_analysis_rel.py). The
paper's figures sweep each parameter rather than fix one value, so every parameter takes a list and the
defaults are the authors' sweeps; each value gives one subset, named with it (e.g. similar_z_1.5):
  similar_middle_m    r_i between the (50 - m/2)th and (50 + m/2)th percentiles of r      m: 40 50 60 70 80 90
  similar_tukey_k     r_i inside Tukey's fences [Q1 - k IQR, Q3 + k IQR]                  k: 0.5 1 1.5 2 2.5 3
  similar_z_z         |r_i - mean(r)| / sd(r) <= z  (population sd, numpy's std)          z: 0.5 1 1.5 2 2.5 3
  similar_pairs_t     responses to the same query with another response whose r differs by less than t
                      (the authors' "sim_threshold"; their single-value call uses t = 0.15)      t: 0.15
  high_disagreement_d H_i at or above the (100 - d)th percentile of H                     d: 2 4 6 ... 16
pairwise:
  similar_ties_p      the p% of pairs with the most "similar / hard to tell" votes (0 on the 5-point scale,
                      tie among A/B/tie votes): sorted by that count, the first int(n p / 100) kept   p: 60 65 ... 95
  similar_ratings_t   |r_A - r_B| < t, for pairs with per-response ratings (not in the Hub set)  t: 0.15
  high_disagreement_p the p% of pairs with the lowest annotator agreement, agreement = max(n_A + n_tie/2,
                      n_B + n_tie/2) / n, sorted ascending, the first int(n p / 100) kept   p: 60 65 ... 95
Sorting is stable, as Python's sort in the authors' code; equal keys keep the order their loader yields: records
grouped by query (in order of first appearance), file order within a query.
Percentiles are numpy's linear interpolation. A pair without votes is not eligible for the vote-based subsets,
and a pair without ratings not for similar_ratings; the tables give every subset's n.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hivemind.studies.scorer_calibration.records import AbsoluteRecord, PairRecord


def _values(*numbers: float) -> tuple[float, ...]:
    return tuple(float(n) for n in numbers)


@dataclass
class Params:
    """Subset parameters; each is a list, one subset per value. Defaults: the authors' sweeps (module docstring;
    main_analysis_abs.py main_abs_analysis_combined_by_judge_types[_disagreement], main_analysis_rel.py)."""
    middle_pct: tuple[float, ...] = _values(40, 50, 60, 70, 80, 90)
    tukey_k: tuple[float, ...] = _values(0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    z_max: tuple[float, ...] = _values(0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    disagreement_pct: tuple[float, ...] = _values(2, 4, 6, 8, 10, 12, 14, 16)
    pair_threshold: tuple[float, ...] = _values(0.15)      # main_analysis_abs.py: sim_method_param=0.15
    pair_similar_pct: tuple[float, ...] = _values(60, 65, 70, 75, 80, 85, 90, 95)
    pair_disagreement_pct: tuple[float, ...] = _values(60, 65, 70, 75, 80, 85, 90, 95)
    bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self):  # a single number is a list of one
        for name in ("middle_pct", "tukey_k", "z_max", "disagreement_pct", "pair_threshold", "pair_similar_pct",
                     "pair_disagreement_pct"):
            value = getattr(self, name)
            setattr(self, name, _values(value) if isinstance(value, (int, float)) else _values(*value))


def value_tag(value: float) -> str:
    """A parameter value as subset names and messages print it (1.5, 40)."""
    return f"{value:g}"


def absolute_subsets(records: list[AbsoluteRecord], params: Params) -> dict[str, np.ndarray]:
    """subset name -> boolean mask over records (definitions in the module docstring)."""
    means = np.array([r.mean for r in records])
    entropies = np.array([r.entropy for r in records])
    q1, q3 = np.percentile(means, [25, 75])
    sd = means.std()
    z = np.abs(means - means.mean()) / sd if sd > 0 else np.zeros_like(means)
    subsets = {"full": np.ones(len(records), dtype=bool)}
    for m in params.middle_pct:
        low, high = np.percentile(means, [(100 - m) / 2, (100 + m) / 2])
        subsets[f"similar_middle_{value_tag(m)}"] = (means >= low) & (means <= high)
    for k in params.tukey_k:
        subsets[f"similar_tukey_{value_tag(k)}"] = (means >= q1 - k * (q3 - q1)) & (means <= q3 + k * (q3 - q1))
    for limit in params.z_max:
        subsets[f"similar_z_{value_tag(limit)}"] = z <= limit
    for t in params.pair_threshold:
        subsets[f"similar_pairs_{value_tag(t)}"] = _close_to_another(records, means, t)
    for d in params.disagreement_pct:
        subsets[f"high_disagreement_{value_tag(d)}"] = entropies >= np.percentile(entropies, 100 - d)
    return subsets


def _close_to_another(records: list[AbsoluteRecord], means: np.ndarray, threshold: float) -> np.ndarray:
    """Records with another response to the same query whose mean rating differs by less than threshold."""
    by_query: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        by_query.setdefault(record.query, []).append(i)
    mask = np.zeros(len(records), dtype=bool)
    for members in by_query.values():
        for i in members:
            mask[i] = any(j != i and abs(means[i] - means[j]) < threshold for j in members)
    return mask


def _first_share(keys: list[float | None], queries: list[str], pct: float) -> np.ndarray:
    """The authors' top-p% cut: eligible records (key not None) sorted stably by key, the first
    int(n_eligible * pct / 100) kept. Equal keys keep the authors' order: records grouped by query (in order of
    the query's first appearance), file order within a query, as their dict-of-queries loader yields them."""
    first_seen: dict[str, int] = {}
    for i, query in enumerate(queries):
        first_seen.setdefault(query, i)
    eligible = sorted((i for i, key in enumerate(keys) if key is not None), key=lambda i: first_seen[queries[i]])
    order = sorted(eligible, key=lambda i: keys[i])       # Python's sort is stable, as in the authors' code
    mask = np.zeros(len(keys), dtype=bool)
    mask[order[:int(len(eligible) * pct / 100)]] = True
    return mask


def pairwise_subsets(records: list[PairRecord], params: Params) -> dict[str, np.ndarray]:
    differences = [r.difference for r in records]
    most_similar_first = [None if r.similar_votes is None else -r.similar_votes for r in records]
    least_agreed_first = [r.agreement for r in records]
    queries = [r.query for r in records]
    subsets = {"full": np.ones(len(records), dtype=bool)}
    for p in params.pair_similar_pct:
        subsets[f"similar_ties_{value_tag(p)}"] = _first_share(most_similar_first, queries, p)
    for t in params.pair_threshold:
        subsets[f"similar_ratings_{value_tag(t)}"] = np.array([d is not None and d < t for d in differences],
                                                              dtype=bool)
    for p in params.pair_disagreement_pct:
        subsets[f"high_disagreement_{value_tag(p)}"] = _first_share(least_agreed_first, queries, p)
    return subsets
