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

from hivemind.report.tables import nan_range
from hivemind.similarity import BUCKET_LABELS

DPI = 110
MARKERS = ["o", "s", "^", "D", "v"]


def text_color(rgba) -> str:
    r, g, b = rgba[:3]
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"


def placeholder(message: str) -> Figure:
    fig = Figure(figsize=(7, 2.5), dpi=DPI)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, textwrap.fill(message, 70), ha="center", va="center", fontsize=11)
    return fig


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
    fig = Figure(figsize=(2.4 + cell * n, 1.0 + 0.4 * len(rows) + label_width * 0.75), dpi=DPI)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["Blues"]
    image = ax.imshow(np.nan_to_num(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    for i in range(len(rows)):
        for j in range(n):
            v = values[i, j]
            label = "–" if np.isnan(v) else f"{v:.{digits}f}"
            color = "#9aa3b0" if np.isnan(v) or v == 0 else text_color(cmap(v / 100))
            ax.text(j, i, label, ha="center", va="center", fontsize=font, color=color)
    ax.axvline(n - 1.5, color="white", linewidth=3)      # sets the Average column apart
    ax.set_xticks(range(n), columns, rotation=45, ha="right", rotation_mode="anchor", fontsize=max(font, 7.5))
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    ax.set_ylabel("intra-model similarity", fontsize=9)
    ax.set_title("Intra-model repetition: % of prompts per similarity bucket", fontsize=11)
    ax.tick_params(length=0)
    fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01).set_label("% of prompts", fontsize=9)
    fig.tight_layout()
    return fig


def plot_inter_heatmap(inter: pd.DataFrame) -> Figure:
    """Fig. 6 layout: lower triangle of the system-by-system mean similarity, values in the cells."""
    names = [str(s) for s in inter.index]
    n = len(names)
    if n < 2:
        return placeholder("Inter-model similarity needs at least two systems.")
    values = inter.to_numpy(dtype=np.float64)[1:, :-1]        # row i+1 vs column j, j <= i: strict lower triangle
    mask = np.triu(np.ones_like(values, dtype=bool), k=1)
    shown = np.where(mask, np.nan, values)
    low, high = nan_range(shown.ravel())
    if np.isnan(low):
        low, high = 0.0, 1.0
    if high - low < 1e-6:
        low, high = low - 0.01, high + 0.01
    # Sized to fit a ~12 inch page width; the font follows the cell so 25+ systems stay readable.
    cell = min(0.9, 9.5 / (n - 1))
    font = float(np.clip(cell * 72 * 0.3, 5.5, 11))
    label_font = float(np.clip(cell * 72 * 0.3, 6.5, 10))
    side = max(5.0, 1.0 + cell * (n - 1) + 0.075 * max(map(len, names)) * label_font / 8)
    fig = Figure(figsize=(side, side), dpi=DPI)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["YlOrRd"].with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=low, vmax=high)
    digits = 2 if n > 8 else 3
    for i in range(n - 1):
        for j in range(i + 1):
            v = shown[i, j]
            ax.text(j, i, "–" if np.isnan(v) else f"{v:.{digits}f}", ha="center", va="center", fontsize=font,
                    color="black" if np.isnan(v) else text_color(cmap((v - low) / (high - low))))
    ax.set_xticks(range(n - 1), names[:-1], rotation=45, ha="right", rotation_mode="anchor", fontsize=label_font)
    ax.set_yticks(range(n - 1), names[1:], fontsize=label_font)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(textwrap.fill("Inter-model homogeneity: mean similarity between systems' answers",
                               int(side * 9)), fontsize=11)
    # The colour bar sits in the empty upper triangle instead of widening the figure.
    bar = fig.colorbar(image, cax=ax.inset_axes([0.5, 0.9, 0.45, 0.03]), orientation="horizontal")
    bar.set_label("mean cosine similarity", fontsize=max(label_font, 8))
    bar.ax.tick_params(labelsize=max(label_font - 1, 7))
    fig.tight_layout()
    return fig


def system_style(index: int) -> tuple[tuple, str]:
    """Colour and marker of the index-th system: 20 colours, then the marker changes, so 25+ stay apart."""
    colors = matplotlib.colormaps["tab20"].colors
    colors = colors[0::2] + colors[1::2]            # the 10 strong hues first, then their light twins
    return colors[index % len(colors)], MARKERS[(index // len(colors)) % len(MARKERS)]


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


def save_figure(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    return path


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
