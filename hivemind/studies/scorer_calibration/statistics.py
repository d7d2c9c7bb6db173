"""The statistics of the calibration study, per scorer and subset (subsets.py).

Statistics
----------
mean rating  r_i = (1/k_i) sum_j rating_ij
entropy      H_i = -sum_{s=1..5} p_is log2 p_is,  p_is = share of record i's ratings equal to s  (0 to log2 5 bits)
absolute:    Spearman's rho between a scorer's score and r_i (scipy.stats.spearmanr), as the authors do
pairwise:    spearman: rho between the scorer's score difference (A - B) and the human margin, as the authors do
             (main_analysis_rel.py); the margin is the mean 5-point vote, else (n_A - n_B)/n of A/B/tie votes,
             else r_A - r_B;
             agreement: share of pairs where the scorer's higher-scored response is the human-preferred one;
             human ties and scorer ties (equal scores) are left out and counted.
bootstrap:   percentile interval of the statistic over `bootstrap` resamples of the subset's records
             (with replacement, seeded); resamples where the statistic is undefined are skipped.

A scorer that gives no score (a judge that refuses or answers off-scale) leaves that record out of that
scorer's numbers only, and the tables say how many it left out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hivemind.core.stats import spearman
from hivemind.studies.scorer_calibration.records import AbsoluteRecord, PairRecord
from hivemind.studies.scorer_calibration.subsets import Params, absolute_subsets, pairwise_subsets


def agreement(scorer_a: np.ndarray, scorer_b: np.ndarray, human: np.ndarray) -> tuple[float, int, int]:
    """(agreement, n compared, scorer ties) over pairs with a human A/B preference."""
    decided = human != "tie"
    ties = decided & (scorer_a == scorer_b)
    use = decided & ~ties
    if not use.any():
        return float("nan"), 0, int(ties.sum())
    picks = np.where(scorer_a[use] > scorer_b[use], "A", "B")
    return float((picks == human[use]).mean()), int(use.sum()), int(ties.sum())


def bootstrap_ci(statistic, arrays: list[np.ndarray], n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of statistic(*arrays) over resamples of the rows (undefined ones skipped)."""
    n = len(arrays[0])
    if n < 3 or n_boot <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        index = rng.integers(0, n, n)
        value = statistic(*[a[index] for a in arrays])
        if not math.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class Row:
    kind: str          # absolute | pairwise
    scorer: str
    subset: str
    statistic: str     # spearman | agreement
    n_subset: int      # records in the subset
    n: int             # records the statistic used (scored; for pairwise: decided and untied)
    value: float       # Spearman rho, or agreement (share of decided pairs)
    ci_low: float
    ci_high: float
    unscored: int      # records the scorer gave no score (refused, off-scale, error)
    excluded_ties: int = 0   # pairwise: human ties plus scorer ties

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) and not math.isnan(v) else v)
                for k, v in self.__dict__.items()}


def absolute_table(records: list[AbsoluteRecord], scores: dict[str, dict[tuple[str, str], float | None]],
                   params: Params) -> list[Row]:
    """Spearman of each scorer with the mean human rating, per subset. scores: scorer -> (query, response) -> score."""
    subsets = absolute_subsets(records, params)
    means = np.array([r.mean for r in records])
    rows = []
    for scorer, by_key in scores.items():
        values = np.array([_num(by_key.get((r.query, r.response))) for r in records])
        for name, mask in subsets.items():
            use = mask & ~np.isnan(values)
            x, y = values[use], means[use]
            rho = spearman(x, y)
            low, high = bootstrap_ci(spearman, [x, y], params.bootstrap, params.seed)
            rows.append(Row("absolute", scorer, name, "spearman", int(mask.sum()), int(use.sum()), rho, low, high,
                            int((mask & np.isnan(values)).sum())))
    return rows


def pairwise_table(records: list[PairRecord], scores: dict[str, dict[tuple[str, str], float | None]],
                   params: Params) -> list[Row]:
    """Per scorer and subset: Spearman of the score difference with the human margin, and agreement."""
    subsets = pairwise_subsets(records, params)
    human = np.array([r.preference for r in records])
    margins = np.array([np.nan if r.margin is None else r.margin for r in records])
    rows = []
    for scorer, by_key in scores.items():
        a = np.array([_num(by_key.get((r.query, r.response_a))) for r in records])
        b = np.array([_num(by_key.get((r.query, r.response_b))) for r in records])
        scored = ~np.isnan(a) & ~np.isnan(b)
        for name, mask in subsets.items():
            use = mask & scored
            unscored = int((mask & ~scored).sum())
            both = use & ~np.isnan(margins)
            x, y = a[both] - b[both], margins[both]
            low, high = bootstrap_ci(spearman, [x, y], params.bootstrap, params.seed)
            rows.append(Row("pairwise", scorer, name, "spearman", int(mask.sum()), int(both.sum()), spearman(x, y),
                            low, high, unscored))
            value, n, scorer_ties = agreement(a[use], b[use], human[use])
            low, high = bootstrap_ci(lambda x, y, h: agreement(x, y, h)[0], [a[use], b[use], human[use]],
                                     params.bootstrap, params.seed)
            human_ties = int((human[use] == "tie").sum())
            rows.append(Row("pairwise", scorer, name, "agreement", int(mask.sum()), n, value, low, high, unscored,
                            human_ties + scorer_ties))
    return rows


def _num(value) -> float:
    return float("nan") if value is None else float(value)
