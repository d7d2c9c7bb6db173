"""Do two embedders tell the same story? Agreement of rankings, and thresholds calibrated per embedder.

Cosines from different embedders live on different scales: on 16 AlpacaEval models' answers to 20
instructions, answers to unrelated prompts sit at a mean cosine of 0.075 under all-MiniLM-L6-v2 and
0.82 under the static tokenlearn-static-model (benchmarks/agreement_alpaca.py). So a fixed line (the paper's 0.8 intra line, the 0.9 near-duplicate threshold) means a different
thing under each, and raw figures from two embedders are never compared without a warning
(`compare_warning`).

Agreement (`agreement`). For one run embedded under embedders A and B (the cache holds both), the same
streaming SimilarityAccumulator as analyze gives each embedder's intra means (per system) and inter
matrix M (K x K). From them:
- rank agreement: Spearman's rho between A's and B's system values, once for the intra mean and once
  for the inter-model mean to the others, m_k = mean_{j != k} M[k, j]. rho = 1: same order.
  rho is undefined (NaN) with fewer than 3 systems that have a value under both, or a constant column
  (intra is undefined for single-sample runs such as AlpacaEval: one answer per model and prompt).
- per cell: M_B[j, k] - M_A[j, k] for every pair j < k, raw and floor-rescaled (below).

Calibration (`calibrate_embedder`). The floor distribution is the cosines of answers to DIFFERENT prompts: what
the embedder says about texts that have no reason to be alike. Its mean f is exact (the accumulator's
identity: (||T||^2 - sum_p ||S_p||^2) / (N^2 - sum_p n_p^2)). Its quantiles (0.5, 0.9, 0.95, 0.99) come
from every cross-prompt pair when there are at most `max_pairs` of them, else from a seeded uniform
sample of `max_pairs` pairs among up to `max_answers` answers (a quantile from M pairs has a standard
error of sqrt(q (1 - q) / M) in quantile position: 0.0002 at q = 0.99, M = 200,000).

A raw line x (a cosine) maps to a calibrated equivalent in two ways:
- rescaled: r(c) = (c - f) / (1 - f) puts the floor at 0 and identity at 1. "Calibrated share above
  0.8" counts prompts with r(intra) > 0.8, i.e. intra > f + 0.8 (1 - f) (`EmbedderCalibration.calibrated_line`).
- quantile position: F(x), the share of floor cosines at or below x (`EmbedderCalibration.line_quantile`); the
  same position under another embedder is its floor quantile at F(x) (`EmbedderCalibration.quantile_line`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hivemind.analyze.similarity import SimilarityAccumulator, SimilarityStats
from hivemind.core.config import Embedder, RunConfig
from hivemind.core.errors import HivemindError
from hivemind.core.stats import spearman
from hivemind.results.folder import run_locked, writing
from hivemind.store import Store

QUANTILES = (0.5, 0.9, 0.95, 0.99)
INTRA_LINE = 0.8            # the paper's line for "highly repetitive" intra-model similarity
NEAR_DUPLICATE_LINE = 0.9   # RunConfig.near_duplicate_threshold's default
AGREEMENT_FILE = "embedder_agreement.csv"
AGREEMENT_SYSTEMS_FILE = "embedder_agreement_systems.csv"
CALIBRATION_FILE = "embedder_calibration.csv"


@dataclass
class EmbedderCalibration:
    """The floor distribution of one embedder on one run, and the maps from raw lines to calibrated ones."""
    embedder: str
    floor: float                        # exact mean cosine of answers to different prompts
    quantiles: dict[float, float]       # q -> cosine at that quantile of the floor distribution
    n_pairs: int                        # pairs the quantiles rest on
    exact: bool                         # True: every cross-prompt pair; False: a seeded uniform sample
    cosines: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # sorted, the pairs used

    def rescale(self, values) -> np.ndarray:
        """(c - f) / (1 - f): 0 = as alike as answers to different prompts, 1 = identical."""
        return (np.asarray(values, dtype=np.float64) - self.floor) / (1.0 - self.floor)

    def calibrated_line(self, line: float) -> float:
        """The raw cosine whose rescaled value is `line`: f + line (1 - f)."""
        return self.floor + line * (1.0 - self.floor)

    def line_quantile(self, x: float) -> float:
        """F(x): the share of floor cosines at or below the raw cosine x."""
        return float(np.searchsorted(self.cosines, x, side="right") / len(self.cosines)) if len(self.cosines) else np.nan

    def quantile_line(self, q: float) -> float:
        """The raw cosine at quantile q of this embedder's floor distribution."""
        return float(np.quantile(self.cosines, q)) if len(self.cosines) else np.nan


@dataclass
class EmbedderMeasures:
    stats: SimilarityStats
    calibration: EmbedderCalibration


def measure_embedder(store: Store, embedder: str, system_ids: list[str], max_pairs: int = 200_000,
            max_answers: int = 20_000, seed: int = 0) -> EmbedderMeasures:
    """One pass over the run's prompt groups for `embedder`: similarity stats and the floor distribution."""
    acc = SimilarityAccumulator(len(system_ids))
    rng = np.random.default_rng(seed)
    vectors, prompts, keys = [], [], []
    kept = 0
    for p, group in enumerate(store.iter_prompt_groups(embedder, system_ids)):
        acc.add(group)
        vectors.append(group.vectors)
        prompts.append(np.full(len(group.vectors), p, dtype=np.int64))
        keys.append(rng.random(len(group.vectors)))
        kept += len(group.vectors)
        if kept > 2 * max_answers:     # keep the max_answers smallest keys: a uniform sample, streaming
            vectors, prompts, keys = _bottom_k(vectors, prompts, keys, max_answers)
            kept = max_answers
    stats = acc.finish()
    if stats.floor is None:
        raise HivemindError(f"embedder {embedder!r}: the floor needs answers to at least two prompts")
    v = np.vstack(vectors).astype(np.float64)
    labels = np.concatenate(prompts)
    sampled_answers = kept > max_answers or len(v) < acc.n_total
    if kept > max_answers:
        v, labels, _ = (x[0] for x in _bottom_k([v], [labels], [np.concatenate(keys)], max_answers))
    cosines, exact = floor_cosines(v, labels, max_pairs, rng)
    exact = exact and not sampled_answers     # all pairs of a sample of answers is still a sample
    cosines.sort()
    calibration = EmbedderCalibration(embedder=embedder, floor=float(stats.floor),
                                      quantiles={q: float(np.quantile(cosines, q)) for q in QUANTILES},
                                      n_pairs=len(cosines), exact=exact, cosines=cosines)
    return EmbedderMeasures(stats=stats, calibration=calibration)


def calibrate_embedder(store: Store, embedder: str, system_ids: list[str]) -> EmbedderCalibration:
    """The floor distribution of `embedder` on this run (for analyze: raw and calibrated lines)."""
    return measure_embedder(store, embedder, system_ids).calibration


def _bottom_k(vectors, prompts, keys, k):
    v, p, key = np.vstack(vectors), np.concatenate(prompts), np.concatenate(keys)
    keep = np.argsort(key, kind="stable")[:k]
    keep.sort()
    return [v[keep]], [p[keep]], [key[keep]]


def floor_cosines(vectors: np.ndarray, labels: np.ndarray, max_pairs: int, rng) -> tuple[np.ndarray, bool]:
    """Cosines of unordered pairs of answers to different prompts: all of them when at most max_pairs,
    else max_pairs drawn uniformly (with replacement) among them. Returns (cosines, exact)."""
    n = len(vectors)
    counts = np.bincount(labels)
    cross = (n * n - int((counts.astype(np.int64) ** 2).sum())) // 2
    if cross <= max_pairs:
        out = []
        for start in range(0, n, 2048):          # blocks of rows keep memory at 2048 x n
            block = vectors[start:start + 2048] @ vectors.T
            rows = np.arange(start, min(start + 2048, n))
            mask = (labels[rows, None] != labels[None, :]) & (rows[:, None] < np.arange(n)[None, :])
            out.append(block[mask])
        return np.concatenate(out) if out else np.zeros(0), True
    picked: list[np.ndarray] = []
    have = 0
    while have < max_pairs:
        i = rng.integers(0, n, size=2 * max_pairs)
        j = rng.integers(0, n, size=2 * max_pairs)
        ok = labels[i] != labels[j]
        c = np.einsum("ij,ij->i", vectors[i[ok]], vectors[j[ok]])
        picked.append(c)
        have += len(c)
    return np.concatenate(picked)[:max_pairs], False


def threshold_table(stats: SimilarityStats, calibration: EmbedderCalibration, names: list[str],
                    line: float = INTRA_LINE) -> pd.DataFrame:
    """Per system: share of prompts with intra above `line`, raw and calibrated (rescaled intra above it).

    Shares are over prompts where intra is defined (>= 2 samples), strict '>', as IntraSummary.above_08."""
    valid = stats.valid
    intra = np.where(valid, stats.intra, -np.inf)
    n = valid.sum(axis=0).astype(np.float64)
    cut = calibration.calibrated_line(line)
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = np.where(n > 0, (intra > line).sum(axis=0) / n, np.nan)
        calibrated = np.where(n > 0, (intra > cut).sum(axis=0) / n, np.nan)
    return pd.DataFrame({"system": names, "embedder": calibration.embedder, "prompts": n.astype(int),
                         f"share_above_{line:g}_raw": raw, f"share_above_{line:g}_calibrated": calibrated,
                         "calibrated_line": cut, "floor": calibration.floor})


def calibration_row(c: EmbedderCalibration) -> dict:
    row = {"embedder": c.embedder, "floor_mean": c.floor}
    row.update({f"floor_q{q:g}": v for q, v in c.quantiles.items()})
    row.update({"pairs": c.n_pairs, "exact": c.exact,
                f"line_{INTRA_LINE:g}_calibrated": c.calibrated_line(INTRA_LINE),
                f"line_{INTRA_LINE:g}_floor_quantile": c.line_quantile(INTRA_LINE),
                f"line_{NEAR_DUPLICATE_LINE:g}_calibrated": c.calibrated_line(NEAR_DUPLICATE_LINE),
                f"line_{NEAR_DUPLICATE_LINE:g}_floor_quantile": c.line_quantile(NEAR_DUPLICATE_LINE)})
    return row


def compare_warning(embedder_a: str, embedder_b: str) -> str | None:
    """None when both figures come from one embedder; else the warning to print beside a raw comparison."""
    if embedder_a == embedder_b:
        return None
    return (f"raw cosines from {embedder_a} and {embedder_b} are on different scales (each has its own "
            f"floor); compare rescaled or calibrated figures, or rankings, not raw values")


# Agreement ---------------------------------------------------------------------------------------
@dataclass
class Agreement:
    embedder_a: str
    embedder_b: str
    systems: pd.DataFrame       # per system: values and ranks under A and B
    cells: pd.DataFrame         # per pair of systems: inter cosine under A and B, the difference
    calibrations: list[EmbedderCalibration]
    spearman_intra: float
    spearman_inter: float

    def summary(self) -> str:
        diff = self.cells["difference"].abs()
        lines = [f"embedder agreement, {self.embedder_a} (A) vs {self.embedder_b} (B), "
                 f"{len(self.systems)} systems:",
                 f"  Spearman of system rankings by inter-model mean to others: {_fmt(self.spearman_inter)}",
                 f"  Spearman of system rankings by intra mean: {_fmt(self.spearman_intra)}"
                 + ("  (undefined: fewer than 2 samples per system and prompt)" if np.isnan(self.spearman_intra) else ""),
                 f"  inter-model cells: mean |B - A| {diff.mean():.3f}, max {diff.max():.3f}; rescaled "
                 f"mean |B - A| {self.cells['rescaled_difference'].abs().mean():.3f}"]
        for c in self.calibrations:
            lines.append(f"  {c.embedder}: floor mean {c.floor:.3f}, q0.99 {c.quantiles[0.99]:.3f}; raw 0.8 "
                         f"~ calibrated {c.calibrated_line(INTRA_LINE):.3f}")
        lines.append("  " + (compare_warning(self.embedder_a, self.embedder_b) or ""))
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return "undefined" if np.isnan(x) else f"{x:.3f}"


def inter_to_others(matrix: np.ndarray) -> np.ndarray:
    """m_k = mean over j != k of matrix[k, j] (NaN cells, pairs never compared, left out)."""
    off = np.where(~np.eye(len(matrix), dtype=bool), matrix, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a system compared with no one: NaN, said so
        return np.nanmean(off, axis=1) if len(matrix) > 1 else np.full(len(matrix), np.nan)


def compare(a: EmbedderMeasures, b: EmbedderMeasures, names: list[str]) -> Agreement:
    """The agreement of two embedders' measurements of the same run (same systems, same order)."""
    ia, ib = a.stats.intra_summary().mean, b.stats.intra_summary().mean
    ma, mb = a.stats.inter_matrix(), b.stats.inter_matrix()
    oa, ob = inter_to_others(ma), inter_to_others(mb)
    systems = pd.DataFrame({
        "system": names, "intra_mean_a": ia, "intra_mean_b": ib,
        "intra_rank_a": pd.Series(ia).rank(ascending=False), "intra_rank_b": pd.Series(ib).rank(ascending=False),
        "inter_to_others_a": oa, "inter_to_others_b": ob,
        "inter_rank_a": pd.Series(oa).rank(ascending=False), "inter_rank_b": pd.Series(ob).rank(ascending=False)})
    j, k = np.triu_indices(len(names), k=1)
    ra, rb = a.calibration.rescale(ma), b.calibration.rescale(mb)
    cells = pd.DataFrame({"system_a": np.array(names)[j], "system_b": np.array(names)[k],
                          "cosine_a": ma[j, k], "cosine_b": mb[j, k], "difference": mb[j, k] - ma[j, k],
                          "rescaled_a": ra[j, k], "rescaled_b": rb[j, k],
                          "rescaled_difference": rb[j, k] - ra[j, k]})
    return Agreement(embedder_a=a.calibration.embedder, embedder_b=b.calibration.embedder, systems=systems,
                     cells=cells, calibrations=[a.calibration, b.calibration],
                     spearman_intra=spearman(ia, ib), spearman_inter=spearman(oa, ob))


def parse_embedder(name: str, config: RunConfig) -> Embedder:
    """A name from the command line: the run's own embedder when it names it, else a local model name."""
    if name in (config.embedder.model, config.embedder.id):
        return config.embedder
    return Embedder(model=name)


def agreement_run(config: RunConfig, names: list[str], progress: bool = True, wait: bool = False) -> Agreement:
    """Embed the run under both embedders (cached: only what is missing), compare, write the tables; under
    the run lock throughout."""
    from hivemind.embed.stage import embed_run

    if len(names or []) != 2 or names[0] == names[1]:
        raise HivemindError("name two different embedders: hivemind agreement RUN --embedder A --embedder B "
                            "(e.g. all-MiniLM-L6-v2 and tokenlearn-static-model)")
    embedders = [parse_embedder(n, config) for n in names]
    ids = [s.identity for s in config.systems]
    measured = []
    with run_locked(config, "agreement", wait):
        for embedder in embedders:
            embed_run(config.model_copy(update={"embedder": embedder}), progress=progress)
            with Store.open_readonly(config.store_path) as store:
                measured.append(measure_embedder(store, embedder.id, ids))
        result = compare(*measured, [s.name for s in config.systems])
        write_agreement(config.run_dir, result, config)
    return result


def write_agreement(run_dir: Path, result: Agreement, config=None) -> list[Path]:
    with writing(run_dir, "agreement", config=config) as out:
        out.csv(AGREEMENT_FILE, result.cells)
        out.csv(AGREEMENT_SYSTEMS_FILE, result.systems)
        out.csv(CALIBRATION_FILE, pd.DataFrame([calibration_row(c) for c in result.calibrations]))
    return out.written
