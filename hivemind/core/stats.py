"""Small statistics shared across stages, written once."""
from __future__ import annotations

import numpy as np


def nanmean(values) -> float:
    """The mean of the values that are not NaN; NaN when there are none (and no RuntimeWarning)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def spearman(a, b) -> float:
    """Spearman's rho over the pairs where both values are finite; NaN with fewer than 3 such pairs or a
    constant side (where rho is undefined)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)
