"""The report's figures, drawn from the analysed tables.

Figures follow the paper's layouts (Jiang et al. 2025): Fig. 4 (share of prompts per intra-model similarity
bucket, one column per system plus the average), Fig. 6 (model-by-model similarity) and Fig. 8.
Matplotlib is used through Figure objects only (no pyplot, so no global state and no GUI backend).
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import matplotlib

if "matplotlib.pyplot" not in sys.modules:     # never switch the backend of a caller that chose one
    matplotlib.use("Agg")
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hivemind.analyze.similarity import BUCKET_LABELS
from hivemind.report.tables import nan_range
from hivemind.results.contract import SIMILARITY_SCALE

DPI = 110
FORMATS = ("png", "svg")       # every figure as PNG (embedded in report.html) and SVG (for papers)
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
# Okabe & Ito (2008), "Color Universal Design": safe for protanopia, deuteranopia and tritanopia.
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
SIMILARITY_CMAP = "viridis"    # perceptually uniform, colour-blind safe, readable in greyscale
BUCKETS_CMAP = "Blues"         # one hue, luminance only (safe for every colour vision deficiency), white at 0%
ANNOTATE_MAX = 15              # above this many systems, cell values are left out of the matrix


def text_color(rgba) -> str:
    r, g, b = rgba[:3]
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"


def placeholder(message: str) -> Figure:
    fig = Figure(figsize=(7, 2.5), dpi=DPI)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, textwrap.fill(message, 70), ha="center", va="center", fontsize=11)
    return fig


def fig_grid(width: float, height: float, left: float, right: float, bottom: float, top: float,
             widths: list[float], wspace: float):
    """A one-row GridSpec on a new width x height inch Figure, margins and gap between columns in inches."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    return fig.add_gridspec(1, len(widths), width_ratios=widths, left=left / width, right=1 - right / width,
                            bottom=bottom / height, top=1 - top / height,
                            wspace=wspace / (sum(widths) / len(widths)))


def plot_intra_heatmap(buckets: pd.DataFrame) -> Figure:
    """Fig. 4 layout: buckets as rows (0.9-1.0 at the top), systems plus "Average" as columns, % of prompts."""
    shares = buckets[BUCKET_LABELS].astype(np.float64)
    if shares.isna().all().all():
        return placeholder("Intra-model similarity is undefined: every system has a single answer per prompt. "
                           "Collect 2 or more samples per prompt to measure it.")
    columns = [str(s) for s in shares.index] + ["Average"]
    values = np.column_stack([shares.to_numpy().T, shares.mean(axis=0, skipna=True).to_numpy()])[::-1] * 100
    rows = BUCKET_LABELS[::-1]
    n = len(columns)
    # Sized to fit a ~13 inch page width: many systems get narrower cells, whole percentages and
    # a font that still fills the cell; zero cells are greyed so the populated buckets stand out.
    cell = min(0.75, 10.5 / n)
    digits = 1 if n <= 14 else 0
    font = float(np.clip(cell * 72 * (0.26 if digits else 0.32), 6, 10))
    label_width = 0.07 * max(map(len, columns)) * max(font, 7.5) / 8
    # The colour bar gets its own grid cell: it can never cover a matrix cell.
    grid = fig_grid(1.2 + cell * n + 0.1 + 0.18 + 0.8, 0.6 + 0.4 * len(rows) + label_width * 0.75 + 0.4,
                    left=1.2, right=0.8, bottom=label_width * 0.75 + 0.4, top=0.6, widths=[cell * n, 0.18],
                    wspace=0.1)
    fig = grid.figure
    ax = fig.add_subplot(grid[0, 0])
    cax = fig.add_subplot(grid[0, 1])
    cmap = matplotlib.colormaps[BUCKETS_CMAP]
    image = ax.imshow(np.nan_to_num(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    for i in range(len(rows)):
        for j in range(n):
            v = values[i, j]
            label = "–" if np.isnan(v) else f"{v:.{digits}f}"
            color = "#9aa3b0" if np.isnan(v) or v == 0 else text_color(cmap(v / 100))
            ax.text(j, i, label, ha="center", va="center", fontsize=font, color=color)
    ax.axvline(n - 1.5, color="white", linewidth=3)      # sets the Average column apart
    ax.set_xticks(range(n), columns, rotation=45 if n <= 26 else 90, ha="right", rotation_mode="anchor", fontsize=max(font, 7.5))
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    ax.set_ylabel("intra-model similarity", fontsize=9)
    ax.set_title("Intra-model repetition: % of prompts per similarity bucket", fontsize=11)
    ax.tick_params(length=0)
    fig.colorbar(image, cax=cax).set_label("% of prompts", fontsize=9)
    return fig


def cluster_order(similarity: np.ndarray) -> np.ndarray:
    """Leaf order of an average-linkage clustering on the distance 1 - similarity (scipy), so systems that
    answer alike sit next to each other and model families show as blocks. Missing cells (two systems
    without a common prompt) count as the largest distance; the diagonal as 0."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    values = np.asarray(similarity, dtype=np.float64)
    n = len(values)
    if n < 3:
        return np.arange(n)
    distance = 1.0 - (values + values.T) / 2
    finite = distance[np.isfinite(distance)]
    distance = np.where(np.isfinite(distance), distance, finite.max() if len(finite) else 1.0)
    distance = np.clip(distance, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    return leaves_list(linkage(squareform(distance, checks=False), method="average", optimal_ordering=True))


def inter_matrix_with_diagonal(inter: pd.DataFrame, intra: pd.Series | None) -> pd.DataFrame:
    """The full system-by-system matrix whose diagonal is each system's intra-model mean (the mean cosine of
    two different answers of that system to the same prompt): the same measure as an off-diagonal cell, for
    a pair of answers from one system. inter_model_similarity.csv's own diagonal counts each answer with
    itself, so it is never shown."""
    full = inter.astype(np.float64).copy()
    values = full.to_numpy(copy=True)
    diagonal = np.full(len(values), np.nan) if intra is None else \
        intra.reindex(full.index).to_numpy(dtype=np.float64)
    np.fill_diagonal(values, diagonal)
    return pd.DataFrame(values, index=full.index, columns=full.columns)


def plot_inter_heatmap(inter: pd.DataFrame, intra: pd.Series | None = None, scale: str = "fixed") -> Figure:
    """The paper's Fig. 6 as a full matrix: every pair of systems, the diagonal = each system's intra-model
    mean (see inter_matrix_with_diagonal), rows and columns in hierarchical-clustering order.

    scale "fixed": colours span results.SIMILARITY_SCALE (cosine 0..1) whatever the data, so two runs
    compare by eye; scale "range": colours span this run's values between different systems (finer
    contrast, not comparable across runs; a diagonal above that range saturates).
    The colour bar lives in its own grid cell, so it never covers a matrix cell; cell values are written
    up to ANNOTATE_MAX systems and dropped above, where they could not be read."""
    names = [str(s) for s in inter.index]
    n = len(names)
    if n < 2:
        return placeholder("Inter-model similarity needs at least two systems.")
    full = inter_matrix_with_diagonal(inter, intra)
    order = cluster_order(full.to_numpy())
    values = full.to_numpy()[np.ix_(order, order)]
    labels = [names[i] for i in order]
    # The range view spans the values *between* systems: the diagonal (intra, usually higher) would
    # otherwise take most of the scale; diagonal cells above it saturate, and the colour bar says so.
    low, high = similarity_limits(values[~np.eye(n, dtype=bool)], scale)
    # Cells shrink with n down to a floor where a 7-point label still fits; the figure grows instead.
    cell = float(np.clip(10.0 / n, 0.2, 0.8))
    label_font = float(np.clip(cell * 72 * 0.5, 6.0, 10.0))
    label_inches = max(map(len, labels)) * label_font * 0.55 / 72
    side = cell * n
    bar, gap = max(0.18, 0.03 * side), 0.12
    width, height = label_inches + side + gap + bar + 0.8, side + label_inches * 0.75 + 1.0
    # Margins in inches (labels left and below, colour bar label right, title above); no tight_layout,
    # which cannot place a colour bar's axes, and bbox_inches="tight" trims the rest when saving.
    grid = fig_grid(width, height, left=label_inches, right=0.8, bottom=label_inches * 0.75, top=1.0,
                    widths=[side, bar], wspace=gap)
    fig = grid.figure
    ax = fig.add_subplot(grid[0, 0])
    cax = fig.add_subplot(grid[0, 1])
    cmap = matplotlib.colormaps[SIMILARITY_CMAP].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=low, vmax=high, aspect="auto",
                      interpolation="nearest")
    if n <= ANNOTATE_MAX:
        font = float(np.clip(cell * 72 * 0.28, 6.0, 10.0))
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                color = "black" if np.isnan(v) else text_color(cmap(float(np.clip((v - low) / (high - low), 0, 1))))
                ax.text(j, i, "–" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=font,
                        color=color, fontweight="bold" if i == j else "normal")
    ax.set_xticks(range(n), labels, rotation=45 if n <= 25 else 90, ha="right", rotation_mode="anchor",
                  fontsize=label_font)
    ax.set_yticks(range(n), labels, fontsize=label_font)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    what = (f"fixed scale {low:g}–{high:g}" if scale == "fixed"
            else f"range between systems {low:.3f}–{high:.3f}, not comparable across runs")
    ax.set_title(textwrap.fill(f"Inter-model homogeneity: mean cosine similarity between systems' answers "
                               f"(diagonal: intra-model mean; clustered order; {what})", max(40, int(width * 11))),
                 fontsize=11)
    above, below = np.nanmax(values) > high, np.nanmin(values) < low
    extend = {(True, True): "both", (True, False): "max", (False, True): "min"}.get((above, below), "neither")
    colour_bar = fig.colorbar(image, cax=cax, extend=extend)
    colour_bar.set_label("mean cosine similarity", fontsize=9)
    colour_bar.ax.tick_params(labelsize=8)
    return fig


INTER_CAPTION = (
    "Mean cosine similarity between the answers of two systems to the same prompt (the paper's Fig. 6, here "
    "the full matrix). Diagonal (bold): each system's intra-model mean, the mean similarity of two different "
    "answers of that system to the same prompt; the paper draws the lower triangle only. Rows and columns "
    "in average-linkage clustering order on 1 - similarity, so systems that answer alike form blocks. Colour "
    "scale fixed at cosine {low:g}–{high:g} for every run, so runs compare by eye; {range_note}")


def inter_caption(range_file: str | None = "inter_model_heatmap_range.png") -> str:
    note = (f"{range_file} spans this run's own range between systems for finer contrast (not comparable "
            "across runs; diagonal cells above it saturate)."
            if range_file else "")
    low, high = SIMILARITY_SCALE
    return INTER_CAPTION.format(low=low, high=high, range_note=note).strip()


def similarity_limits(values: np.ndarray, scale: str) -> tuple[float, float]:
    if scale == "fixed":
        return SIMILARITY_SCALE
    if scale != "range":
        raise ValueError(f"scale must be 'fixed' or 'range', not {scale!r}")
    low, high = nan_range(np.asarray(values, dtype=np.float64).ravel())
    if np.isnan(low):
        return SIMILARITY_SCALE
    if high - low < 1e-6:
        low, high = low - 0.01, high + 0.01
    return low, high


def system_style(index: int) -> tuple[str, str]:
    """Colour and marker of the index-th system: the 8 Okabe-Ito colours (distinct under the common colour
    vision deficiencies) and 7 markers; 8 and 7 are co-prime, so the first 56 systems each get their own
    pair and two systems of one colour always differ in shape."""
    return OKABE_ITO[index % len(OKABE_ITO)], MARKERS[index % len(MARKERS)]


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) coordinates on the first two principal axes and the share of variance of each."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0)
    if len(x) < 2 or not np.any(x):
        return np.zeros((len(x), 2)), np.zeros(2)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    coords = x @ vt[:2].T
    ratio = (s ** 2 / np.sum(s ** 2))[:2]
    if coords.shape[1] < 2:
        coords = np.column_stack([coords, np.zeros(len(coords))])
        ratio = np.append(ratio, 0.0)
    return coords, ratio


def plot_prompt_map(vectors: np.ndarray, system_index: np.ndarray, systems: list[str], prompt: str,
                    similarity: float | None = None) -> Figure:
    """All answers to one prompt in the PCA plane of their embeddings, one colour (and marker) per system."""
    coords, ratio = pca_2d(vectors)
    present = sorted(set(np.asarray(system_index).tolist()))
    fig = Figure(figsize=(8 if len(present) <= 18 else 10, 5.5), dpi=DPI)   # room for a 2-column legend
    ax = fig.add_subplot()
    for k in present:
        color, marker = system_style(k)
        pts = coords[np.asarray(system_index) == k]
        ax.scatter(pts[:, 0], pts[:, 1], s=36, color=color, marker=marker, alpha=0.8, edgecolors="white",
                   linewidths=0.5, label=systems[k])
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}% of variance)", fontsize=9)
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}% of variance)", fontsize=9)
    title = textwrap.fill(textwrap.shorten(" ".join(prompt.split()), 180, placeholder=" …"), 80)
    if similarity is not None and not pd.isna(similarity):
        title += f"\n(mean similarity between systems: {similarity:.3f}, {len(coords)} answers)"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8 if len(present) <= 16 else 7,
              ncol=1 if len(present) <= 18 else 2, frameon=False, markerscale=0.9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """The figure as path (its suffix replaced) in each format; returns the files written, PNG first."""
    written = []
    for fmt in formats:
        target = Path(path).with_suffix(f".{fmt}")
        # SVG keeps text as text (searchable, editable); no hash salt or date, so a re-render is identical.
        fig.savefig(target, dpi=DPI, bbox_inches="tight", facecolor="white", format=fmt,
                    metadata={"Date": None} if fmt == "svg" else None)
        written.append(target)
    return written


def fig8_figure(by_n: pd.DataFrame) -> Figure:
    """Fig. 8 as published: per-prompt distribution of distinct systems among the N nearest answers."""
    fig = Figure(figsize=(8, 3.6), dpi=DPI)
    ax = fig.add_subplot()
    ns = sorted(by_n["n"].unique())
    data = [by_n.loc[by_n["n"] == n, "mean_distinct_systems"].dropna().to_numpy() for n in ns]
    ax.boxplot(data, tick_labels=[str(int(n)) for n in ns])
    ax.set_xlabel("N nearest answers")
    ax.set_ylabel("distinct systems among them")
    ax.set_title("Distinct systems among each answer's N nearest answers (per prompt)")
    fig.tight_layout()
    return fig
