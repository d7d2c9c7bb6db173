"""The report: figures, one self-contained report.html and a report.md, rendered from the analysed tables.

Everything is read from the tables that `analyze_run` wrote into the run folder (plus the store, for the
prompt maps' vectors), checked against the config before anything is drawn, rendered into a temporary
folder and only then renamed into place, so a failed render never leaves half a report.

Figures follow the paper's layouts (Jiang et al. 2025): Fig. 4 (share of prompts per intra-model similarity
bucket, one column per system plus the average) and Fig. 6 (lower-triangle model-by-model similarity).
Matplotlib is used through Figure objects only (no pyplot, so no global state and no GUI backend).
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

if "matplotlib.pyplot" not in sys.modules:     # never switch the backend of a caller that chose one
    matplotlib.use("Agg")
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hivemind import HivemindError, results
from hivemind.browser import browser_section
from hivemind.config import RunConfig
from hivemind.similarity import BUCKET_LABELS, FLOOR_TOLERANCE
from hivemind.secrets import scan_paths

REFERENCE_NAME = "paper_reference.json"
REQUIRED = ["analysis.json", "intra_model_buckets.csv", "inter_model_similarity.csv",
            "inter_model_similarity_rescaled.csv", "prompt_homogeneity.csv", "near_duplicates.csv",
            "shared_phrases.csv", "lexical_diversity.csv", "leaderboard.csv"]
# Columns read as text whatever they look like ("1" stays a prompt id, "NA" stays a name or an answer).
TEXT_COLUMNS = {"system", "system_a", "system_b", "prompt_id", "prompt", "text_a", "text_b", "phrase",
                "systems", "model", "kind", "setting", "rank", "setting_a", "setting_b"}
PAIRS_PER_PROMPT = 2          # near-duplicate pairs shown per prompt
MIN_SHARED_WORDS = 5          # phrases of this many words shared by two answers are highlighted
TOP_PAIRS = 10
TOP_PHRASES = 15
DPI = 110
MARKERS = ["o", "s", "^", "D", "v"]


# Reading and checking the tables ------------------------------------------------------------------
@dataclass
class Tables:
    systems: list[str]                    # config order
    buckets: pd.DataFrame                 # index: system
    inter: pd.DataFrame                   # square, index and columns: system
    inter_rescaled: pd.DataFrame
    homogeneity: pd.DataFrame
    near_duplicates: pd.DataFrame
    shared_phrases: pd.DataFrame
    lexical: pd.DataFrame                 # index: system
    leaderboard: pd.DataFrame             # index: system (real systems only)
    info: dict
    reference: dict | None = None
    controls: pd.DataFrame | None = None  # leaderboard rows of control systems (kind == control)
    by_n: pd.DataFrame | None = None      # neighbor_diversity_by_n.csv (Fig. 8 per prompt)
    settings: pd.DataFrame | None = None  # setting_headlines.csv
    cross_setting: pd.DataFrame | None = None
    coverage: pd.DataFrame | None = None  # embedding_coverage.csv (embed stage): answers embedded in chunks


def read_table(path: Path, index: str | None = None) -> pd.DataFrame:
    """A CSV with text columns kept as text and only empty cells of the other columns read as missing."""
    header = pd.read_csv(path, nrows=0).columns
    text = [c for c in header if c in TEXT_COLUMNS]
    numeric = {c: ["", "nan", "NaN"] for c in header if c not in TEXT_COLUMNS}
    frame = pd.read_csv(path, dtype={c: str for c in text}, keep_default_na=False, na_values=numeric)
    return frame.set_index(index) if index else frame


def load_tables(config: RunConfig) -> Tables:
    run_dir, name = config.run_dir, config.name
    missing = [f for f in REQUIRED if not (run_dir / f).is_file()]
    if missing:
        what = "was never analysed" if len(missing) == len(REQUIRED) else f"lacks {', '.join(missing)}"
        raise HivemindError(f"{run_dir}: run {name!r} {what}, so there is nothing to report; "
                            f"run `hivemind analyze {name}` first")
    try:
        info = json.loads((run_dir / "analysis.json").read_text(encoding="utf-8"))
        buckets = read_table(run_dir / "intra_model_buckets.csv", "system")
        inter = read_table(run_dir / "inter_model_similarity.csv", "system")
        inter_rescaled = read_table(run_dir / "inter_model_similarity_rescaled.csv", "system")
        lexical = read_table(run_dir / "lexical_diversity.csv", "system")
        board = read_table(run_dir / "leaderboard.csv")
        homogeneity = read_table(run_dir / "prompt_homogeneity.csv")
        near = read_table(run_dir / "near_duplicates.csv")
        phrases = read_table(run_dir / "shared_phrases.csv")
        expect_columns(run_dir, name, {
            "intra_model_buckets.csv": (buckets, [*BUCKET_LABELS, "above_0.8", "above_0.8_ci_low",
                                                  "above_0.8_ci_high", "mean", "mean_ci_low", "mean_ci_high",
                                                  "mean_rescaled", "n_prompts"]),
            "prompt_homogeneity.csv": (homogeneity, ["prompt_id", "prompt", "mean_similarity"]),
            "near_duplicates.csv": (near, ["prompt_id", "system_a", "system_b", "similarity", "exact",
                                           "text_a", "text_b"]),
            "shared_phrases.csv": (phrases, ["prompt_id", "phrase", "n_words", "n_systems", "systems"]),
            "lexical_diversity.csv": (lexical, ["distinct_1", "distinct_2", "distinct_3", "compression_ratio",
                                                "mean_words"]),
            "leaderboard.csv": (board, list(results.TABLES["leaderboard.csv"].columns)),
        })
        leaderboard = board[board["kind"] != "control"].set_index("system")
        controls = board[board["kind"] == "control"].set_index("system")
        optional = {name: read_table(run_dir / name) if (run_dir / name).is_file() else None
                    for name in ("neighbor_diversity_by_n.csv", "setting_headlines.csv", "cross_setting_pairs.csv")}
    except (ValueError, KeyError, json.JSONDecodeError, pd.errors.ParserError) as err:
        raise HivemindError(f"{run_dir}: an analysis table is unreadable ({err}); "
                            f"run `hivemind analyze {name}` again") from None
    systems = [s.name for s in config.systems]
    check_systems(config, info, {"intra_model_buckets.csv": list(buckets.index),
                                 "inter_model_similarity.csv": list(inter.index),
                                 "inter_model_similarity.csv (columns)": list(inter.columns),
                                 "lexical_diversity.csv": list(lexical.index),
                                 "leaderboard.csv": list(leaderboard.index)}, leaderboard)
    for frame in (near, phrases):
        for column in ("text_a", "text_b", "systems", "phrase"):
            if column in frame:
                frame[column] = frame[column].fillna("")
    return Tables(systems=systems, buckets=buckets.loc[systems], inter=inter.loc[systems, systems],
                  inter_rescaled=inter_rescaled.reindex(index=systems, columns=systems),
                  homogeneity=homogeneity, near_duplicates=near, shared_phrases=phrases,
                  lexical=lexical.loc[systems], leaderboard=leaderboard.loc[systems], info=info,
                  reference=load_reference(run_dir, info), controls=controls,
                  by_n=optional["neighbor_diversity_by_n.csv"], settings=optional["setting_headlines.csv"],
                  cross_setting=optional["cross_setting_pairs.csv"], coverage=load_coverage(run_dir, info))


def expect_columns(run_dir: Path, name: str, tables: dict[str, tuple[pd.DataFrame, list[str]]]) -> None:
    for file, (frame, columns) in tables.items():
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise HivemindError(f"{run_dir / file}: missing column(s) {', '.join(absent)}; it was written by "
                                f"another version of hivemind; run `hivemind analyze {name}` again")


def check_systems(config: RunConfig, info: dict, tables: dict[str, list[str]], leaderboard: pd.DataFrame) -> None:
    """The tables must describe exactly the config's systems (same names, same models)."""
    configured = [s.name for s in config.systems]
    analysed = [str(s) for s in info.get("systems") or tables["intra_model_buckets.csv"]]
    fix = f"re-run `hivemind analyze {config.name}` so the tables match the config"
    not_analysed = [s for s in configured if s not in analysed]
    not_configured = [s for s in analysed if s not in configured]
    if not_analysed or not_configured:
        parts = []
        if not_analysed:
            parts.append(f"system(s) in the config but not in the analysis: {', '.join(not_analysed)}")
        if not_configured:
            parts.append(f"analysed system(s) not in the config: {', '.join(not_configured)}")
        raise HivemindError(f"{config.run_dir}: the analysis does not match the config of run {config.name!r} "
                            f"({'; '.join(parts)}); were systems renamed? {fix}")
    for file, names in tables.items():
        if sorted(map(str, names)) != sorted(configured):
            raise HivemindError(f"{config.run_dir / file.split(' ')[0]}: its systems ({', '.join(map(str, names))}) "
                                f"differ from analysis.json; {fix}")
    changed = [f"{s.name} (analysed as {leaderboard.at[s.name, 'model']}, configured as {s.model})"
               for s in config.systems if str(leaderboard.at[s.name, "model"]) != s.model]
    if changed:
        raise HivemindError(f"{config.run_dir}: the model of system(s) {', '.join(changed)} changed since the "
                            f"analysis; {fix}")


def load_reference(run_dir: Path, info: dict) -> dict | None:
    """The paper's published figures, when the run carries them (analysis.json or paper_reference.json)."""
    if isinstance(info.get("paper_reference"), dict):
        return info["paper_reference"]
    path = run_dir / REFERENCE_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise HivemindError(f"{path}: malformed JSON ({err}); delete it or write it again "
                            f"(`hivemind reproduce` writes it)") from None
    return data if isinstance(data, dict) else None


# Headline numbers ----------------------------------------------------------------------------------
@dataclass
class Headline:
    share_above_08: float           # mean over systems of the share of prompts with intra > 0.8
    intra_mean: float
    intra_mean_rescaled: float
    inter_min: float                # off the diagonal
    inter_max: float
    inter_min_rescaled: float
    inter_max_rescaled: float
    inter_mean: float
    floor: float | None
    n_prompts: int
    n_responses: int
    embedder: str
    share_above_08_calibrated: float = float("nan")   # same, above the line with 0.8's rescaled value
    calibrated_line: float | None = None
    share_chunked: float | None = None              # answers longer than the embedder's window (pooled chunks)


def nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


def off_diagonal(frame: pd.DataFrame) -> np.ndarray:
    values = frame.to_numpy(dtype=np.float64)
    return values[~np.eye(len(values), dtype=bool)]


def nan_range(values: np.ndarray) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    return (float(values.min()), float(values.max())) if len(values) else (float("nan"), float("nan"))


def load_coverage(run_dir: Path, info: dict) -> pd.DataFrame | None:
    """The embed stage's chunking table, rows of this analysis' embedder only; None when absent or unreadable."""
    path = run_dir / "embedding_coverage.csv"
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    return frame[frame["embedder"] == info.get("embedder")] if "embedder" in frame else None


def headline(t: Tables) -> Headline:
    low, high = nan_range(off_diagonal(t.inter))
    low_r, high_r = nan_range(off_diagonal(t.inter_rescaled))
    floor = t.info.get("floor")
    return Headline(
        share_above_08=nanmean(t.buckets["above_0.8"]), intra_mean=nanmean(t.buckets["mean"]),
        intra_mean_rescaled=nanmean(t.buckets["mean_rescaled"]), inter_min=low, inter_max=high,
        inter_min_rescaled=low_r, inter_max_rescaled=high_r, inter_mean=nanmean(off_diagonal(t.inter)),
        floor=float(floor) if floor is not None else None, n_prompts=int(t.info.get("n_prompts", 0)),
        n_responses=int(t.info.get("n_responses", 0)), embedder=str(t.info.get("embedder", "")),
        share_above_08_calibrated=nanmean(t.buckets["above_0.8_calibrated"])
        if "above_0.8_calibrated" in t.buckets else float("nan"),
        calibrated_line=(t.info.get("thresholds") or {}).get("intra_line_calibrated"),
        share_chunked=(float(t.coverage["chunked"].sum() / t.coverage["answers"].sum())
                       if t.coverage is not None and t.coverage["answers"].sum() > 0 else None))


def pct(value, digits: int = 1) -> str:
    return "—" if value is None or pd.isna(value) else f"{100 * float(value):.{digits}f}%"


def num(value, digits: int = 3) -> str:
    return "—" if value is None or pd.isna(value) else f"{float(value):.{digits}f}"


def span(low, high, digits: int = 3) -> str:
    return "—" if pd.isna(low) else f"{low:.{digits}f} – {high:.{digits}f}"


def with_ci(value, low, high, fmt) -> str:
    if pd.isna(value):
        return "—"
    return fmt(value) if pd.isna(low) else f"{fmt(value)} [{fmt(low)}, {fmt(high)}]"


def headline_rows(h: Headline) -> list[tuple[str, str, str]]:
    """(figure, value, rescaled value) rows shared by the HTML and the Markdown report."""
    floor = num(h.floor) if h.floor is not None else "— (one prompt)"
    return [
        ("Share of prompts with intra-model similarity > 0.8 (mean over systems; the paper's raw line)",
         pct(h.share_above_08), ""),
        (f"Same, above the calibrated line {num(h.calibrated_line)} (0.8's rescaled value under {h.embedder})",
         pct(h.share_above_08_calibrated), "0.8"),
        ("Mean intra-model similarity (mean over systems)", num(h.intra_mean), num(h.intra_mean_rescaled)),
        ("Inter-model similarity, range between different systems", span(h.inter_min, h.inter_max),
         span(h.inter_min_rescaled, h.inter_max_rescaled)),
        ("Inter-model similarity, mean between different systems", num(h.inter_mean),
         num((h.inter_mean - h.floor) / (1 - h.floor)) if h.floor is not None and 1 - h.floor > FLOOR_TOLERANCE else "—"),
        ("Floor: mean similarity of answers to different prompts", floor, "0 by definition"),
        ("Answers longer than the embedder's window, embedded in chunks and pooled (never cut)",
         pct(h.share_chunked) if h.share_chunked is not None else "— (no embedding_coverage.csv)", ""),
    ]


def paper_rows(t: Tables, config: RunConfig, h: Headline) -> list[tuple[str, str, str]]:
    """(figure, this run, paper) rows, like for like: the paper's 79% and bucket averages are top-p only,
    its 61.2% min-p; the inter-model range is taken among systems of one setting (a model's two settings
    are a cross-setting pair, listed apart)."""
    ref = t.reference or {}
    settings = {s.name: results.setting_of(s.params) for s in config.systems}
    share = ref.get("share_above_0.8") or {}
    rows = []
    for label in ("top-p", "min-p"):
        names = [n for n, st in settings.items() if st == label]
        value = pct(nanmean(t.buckets.loc[names, "above_0.8"])) if names else f"— (no {label} system)"
        rows.append((f"Share of prompts with intra > 0.8, {label} systems", value, pct(share.get(label))))
    top_p = [n for n, st in settings.items() if st == "top-p"]
    average = t.buckets.loc[top_p, BUCKET_LABELS].mean(axis=0, skipna=True) if top_p else \
        pd.Series(np.nan, index=BUCKET_LABELS)
    paper_buckets = ref.get("intra_model_buckets_average") or {}
    for label in ("0.9-1.0", "0.8-0.9", "0.7-0.8", "0.6-0.7"):
        rows.append((f"Prompts in intra-similarity bucket {label} (top-p systems)", pct(average[label]),
                     pct(paper_buckets.get(label))))
    below = average[BUCKET_LABELS[:6]].sum() if average.notna().any() else float("nan")
    rows.append(("Prompts in intra-similarity bucket below 0.6 (top-p systems)", pct(below),
                 pct(paper_buckets.get("below_0.6"))))
    paper_range = ref.get("inter_model_similarity_range") or [float("nan"), float("nan")]
    for label in ("top-p", "min-p"):
        names = [n for n, st in settings.items() if st == label]
        low, high = nan_range(off_diagonal(t.inter.loc[names, names])) if len(names) > 1 else (np.nan, np.nan)
        rows.append((f"Inter-model similarity range among {label} systems", span(low, high, 2),
                     span(paper_range[0], paper_range[1], 2) if label == "top-p" else "—"))
    if t.cross_setting is not None and len(t.cross_setting):
        rows.append(("Same model, top-p vs min-p (cross-setting pairs, not in the ranges above)",
                     "; ".join(f"{r.system_a} / {r.system_b}: {num(r.similarity, 2)}"
                               for r in t.cross_setting.itertuples()), "—"))
    rows.append(("Embedder", h.embedder, str(ref.get("embedder", "—"))))
    return rows


# Figures -------------------------------------------------------------------------------------------
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


# Prompt maps: vectors straight from the store ------------------------------------------------------
@dataclass
class PromptMap:
    prompt_id: str
    prompt: str
    similarity: float
    file: str
    vectors: np.ndarray = field(repr=False)
    systems: np.ndarray = field(repr=False)


def file_stem(prompt_id: str) -> str:
    """A file-name-safe form of a prompt id; a hash suffix keeps altered ids apart."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", prompt_id).strip("_")[:60]
    if safe != prompt_id or not safe:
        safe = f"{safe or 'prompt'}-{hashlib.sha256(prompt_id.encode()).hexdigest()[:8]}"
    return safe


def top_prompts_frame(homogeneity: pd.DataFrame, n: int) -> pd.DataFrame:
    frame = homogeneity.dropna(subset=["mean_similarity"])
    return frame.sort_values("mean_similarity", ascending=False, kind="stable").head(max(n, 0))


def load_prompt_maps(config: RunConfig, chosen: pd.DataFrame) -> tuple[list[PromptMap], str | None]:
    """Vectors of every answer to the chosen prompts; (maps, note) where the note says why maps are missing."""
    if chosen.empty:
        return [], None
    if not config.store_path.is_file():
        return [], f"no store at {config.store_path}, so no prompt maps"
    from hivemind.store import Store

    ids = [s.identity for s in config.systems]
    index = {sid: k for k, sid in enumerate(ids)}
    with Store.open_readonly(config.store_path) as store:
        found = store.vectors_for_prompts(config.embedder.id, ids, chosen["prompt_id"].tolist())
    maps = []
    for _, row in chosen.iterrows():
        if row["prompt_id"] not in found:
            continue
        systems, vectors = found[row["prompt_id"]]
        maps.append(PromptMap(
            prompt_id=row["prompt_id"], prompt=row["prompt"], similarity=float(row["mean_similarity"]),
            file=f"prompt_map_{file_stem(row['prompt_id'])}.png", vectors=vectors,
            systems=np.array([index[s] for s in systems], dtype=np.int32)))
    return maps, None


# Shared phrases in two texts -----------------------------------------------------------------------
def _words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised word): lower case, punctuation at the edges ignored."""
    return [(m.start(), m.end(), re.sub(r"^\W+|\W+$", "", m.group().lower())) for m in re.finditer(r"\S+", text)]


def _shared_positions(words: list[str], other: set[tuple[str, ...]], n: int) -> list[bool]:
    marked = [False] * len(words)
    for i in range(len(words) - n + 1):
        if tuple(words[i:i + n]) in other:
            marked[i:i + n] = [True] * n
    return marked


def highlight_shared(text_a: str, text_b: str, n: int = MIN_SHARED_WORDS) -> tuple[str, str]:
    """Both texts as escaped HTML, with every run of words that is part of an n-gram (n words or more)
    found in the other text wrapped in <mark>."""
    wa, wb = _words(text_a), _words(text_b)
    grams = lambda ws: {tuple(w[2] for w in ws[i:i + n]) for i in range(len(ws) - n + 1)}
    ga, gb = grams(wa), grams(wb)
    return (_marked_html(text_a, wa, _shared_positions([w[2] for w in wa], gb, n)),
            _marked_html(text_b, wb, _shared_positions([w[2] for w in wb], ga, n)))


def _marked_html(text: str, words: list[tuple[int, int, str]], marked: list[bool]) -> str:
    out, pos, i = [], 0, 0
    while i < len(words):
        if not marked[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(words) and marked[j + 1]:
            j += 1
        start, end = words[i][0], words[j][1]
        out.append(html.escape(text[pos:start]))
        out.append(f"<mark>{html.escape(text[start:end])}</mark>")
        pos, i = end, j + 1
    out.append(html.escape(text[pos:]))
    return "".join(out)


# Tables shown in both reports ----------------------------------------------------------------------
def diversity_rows(t: Tables) -> list[tuple[str, str, str]]:
    """Headline rows of the quality-gated and pooled ("hivemind") views, from analysis.json."""
    head = t.info.get("headline") or {}
    primary = primary_of(t)
    rows = [(f"{results.METRICS[primary].display} (mean over systems; the ranking key)",
             num(head.get(f"{primary}_mean")), ""),
            ("Pooled Vendi score per prompt, all systems together (mean over prompts)",
             num(head.get("pooled_vendi_mean"), 2), ""),
            ("Pooled distinct ideas per prompt, all systems together (mean over prompts)",
             num(head.get("pooled_distinct_ideas_mean"), 2), "")]
    return [(a, b, c) for a, b, c in rows if b != "—"]


def primary_of(t: Tables) -> str:
    key = t.info.get("primary_key")
    return key if key in results.METRICS else results.PRIMARY


def fmt_metric(name: str, value) -> str:
    kind = results.METRICS[name].fmt if name in results.METRICS else "num"
    if kind == "pct":
        return pct(value)
    if kind == "int":
        return "—" if pd.isna(value) else str(int(value))
    return num(value, 2 if name in ("vendi", "distinct_ideas", "mean_distinct_neighbors") else 3)


SHOWN = ["vendi", "distinct_ideas", "utility", "pass_rate", "intra_mean", "share_above_0.8", "inter_mean_others",
         "near_duplicate_rate", "mean_distinct_neighbors", "distinct_2_per_prompt", "compression_per_prompt",
         "n_prompts", "n_responses"]


def leaderboard_table(t: Tables) -> pd.DataFrame:
    """The one ranking (results.py): the primary key first, rank 1 = most diverse, ties shown '2=';
    control systems placed where their value lands, without a rank."""
    primary = primary_of(t)
    lb, b = t.leaderboard, t.buckets
    frame = lb.assign(kind="system")
    if t.controls is not None and len(t.controls):
        frame = pd.concat([frame, t.controls.assign(kind="control")])
    frame = results.sort_by_primary(frame.reset_index(), primary)
    rows = []
    for r in frame.to_dict("records"):
        name = r["system"]
        control = r["kind"] == "control"
        ci = lambda m: with_ci(r.get(m), r.get(f"{m}_ci_low"), r.get(f"{m}_ci_high"), lambda v: fmt_metric(m, v))
        row = {"rank": "control" if control else (str(r.get("rank") or "—")),
               f"{results.METRICS[primary].display} [CI]": ci(primary), "system": name, "model": r["model"]}
        for m in SHOWN:
            label = results.METRICS[m].display
            if m == "intra_mean" and not control:
                row[label + " [CI]"] = with_ci(r[m], b.at[name, "mean_ci_low"], b.at[name, "mean_ci_high"], num)
            elif m == "share_above_0.8" and not control:
                row[label + " [CI]"] = with_ci(r[m], b.at[name, "above_0.8_ci_low"], b.at[name, "above_0.8_ci_high"], pct)
            else:
                key = label + (" [CI]" if m in ("intra_mean", "share_above_0.8") else "")
                row[key] = fmt_metric(m, r.get(m))
        rows.append(row)
    return pd.DataFrame(rows)


def numeric_columns(frame: pd.DataFrame) -> set[str]:
    return {c for c in frame.columns if c not in ("system", "model")}


def gate_note(t: Tables) -> str:
    gate = t.info.get("quality_gate") or {}
    primary = primary_of(t)
    metric = results.METRICS[primary]
    return (f"Ranked by {metric.display} ({metric.direction} when higher; {metric.reference}); rank 1 = most "
            f"diverse, equal values share a rank (\"2=\"). Quality gate: {gate.get('description', 'none')}.")


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


def setting_rows(t: Tables) -> pd.DataFrame | None:
    if t.settings is None or t.settings.empty:
        return None
    return pd.DataFrame({
        "setting": t.settings["setting"], "systems": t.settings["n_systems"].map(lambda v: str(int(v))),
        "share > 0.8": t.settings["share_above_0.8"].map(pct), "intra mean": t.settings["intra_mean"].map(num),
        "inter range (same setting)": [span(lo, hi) for lo, hi in zip(t.settings["inter_min"], t.settings["inter_max"])]})


def shown_pairs(t: Tables, short: bool) -> pd.DataFrame:
    """Near-duplicate pairs, at most PAIRS_PER_PROMPT per prompt, long answers and short ones apart."""
    near = t.near_duplicates
    if "short" in near:
        flag = near["short"].astype(str).str.lower().isin({"true", "1"})
        near = near[flag] if short else near[~flag]
    elif short:
        near = near.iloc[0:0]
    pairs = near[near["system_a"] != near["system_b"]]
    pairs = pairs.sort_values("similarity", ascending=False, kind="stable")
    pairs = pairs.groupby("prompt_id", sort=False).head(PAIRS_PER_PROMPT).head(TOP_PAIRS).copy()
    prompts = dict(zip(t.homogeneity["prompt_id"], t.homogeneity["prompt"]))
    pairs["prompt"] = [prompts.get(p, "") for p in pairs["prompt_id"]]
    return pairs


def near_heading(t: Tables) -> str:
    return (f"Near-duplicate answers from different systems (cosine ≥ {t.info.get('threshold', '')}, "
            f"embedder {t.info.get('embedder', '')})")


def cross_system_pairs(t: Tables, n: int = TOP_PAIRS) -> pd.DataFrame:
    return shown_pairs(t, short=False).head(n)


def phrases_table(t: Tables, n: int = TOP_PHRASES) -> pd.DataFrame:
    ph = t.shared_phrases.sort_values(["n_systems", "n_words"], ascending=False, kind="stable").head(n)
    return pd.DataFrame({"phrase": ph["phrase"], "words": ph["n_words"], "systems": ph["n_systems"],
                         "prompt": ph["prompt_id"], "shared by": ph["systems"].map(short_list)})


def short_list(joined: str, keep: int = 8) -> str:
    """"a;b;c;..." as "a, b, c, ... (+N more)": 25 names per row would drown the phrase."""
    names = [n for n in str(joined).split(";") if n]
    more = f" (+{len(names) - keep} more)" if len(names) > keep else ""
    return ", ".join(names[:keep]) + more


def lexical_table(t: Tables) -> pd.DataFrame:
    lx = t.lexical
    return pd.DataFrame({"system": lx.index, "distinct-1": lx["distinct_1"].map(num),
                         "distinct-2": lx["distinct_2"].map(num), "distinct-3": lx["distinct_3"].map(num),
                         "compression ratio": lx["compression_ratio"].map(lambda v: num(v, 2)),
                         "mean words": lx["mean_words"].map(lambda v: num(v, 0))})


# HTML ----------------------------------------------------------------------------------------------
CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1280px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:36px 0 8px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
.meta{color:#5b6473;font-size:14px}.note{color:#5b6473;font-size:13px;margin:4px 0 12px}
.cards{display:flex;flex-wrap:wrap;gap:14px;margin:18px 0}
.card{flex:1 1 220px;border:1px solid #dde1e7;border-radius:8px;padding:12px 16px;background:#fbfcfd}
.card .v{font-size:26px;font-weight:600}.card .l{font-size:13px;color:#5b6473}.card .r{font-size:13px;color:#2a5db0}
table{border-collapse:collapse;font-size:13px;margin:8px 0;width:100%}
th,td{border-bottom:1px solid #e4e7ec;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5;position:sticky;top:0}tr:nth-child(even) td{background:#fafbfc}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
img{max-width:100%;height:auto;display:block;margin:8px auto}
.warn{background:#fff6e0;border:1px solid #f0d48a;border-radius:6px;padding:8px 12px;font-size:13px}
.pair{border:1px solid #dde1e7;border-radius:8px;margin:14px 0;overflow:hidden}
.pair .head{background:#f0f2f5;padding:6px 12px;font-size:13px}
.pair .cols{display:grid;grid-template-columns:1fr 1fr}
.pair .col{padding:8px 12px;font-size:13px;white-space:pre-wrap;overflow-wrap:anywhere;max-height:320px;overflow:auto}
.pair .col+.col{border-left:1px solid #dde1e7}.pair .sys{font-weight:600;margin-bottom:4px;white-space:normal}
mark{background:#ffe37a;padding:0 1px}
.maps img{max-width:min(100%,1100px);margin:12px auto 28px}
"""


def html_table(frame: pd.DataFrame, numeric: set[str] = frozenset()) -> str:
    head = "".join(f'<th class="n">{html.escape(str(c))}</th>' if c in numeric else f"<th>{html.escape(str(c))}</th>"
                   for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(f'<td class="n">{html.escape(str(v))}</td>' if c in numeric
                        else f"<td>{html.escape(str(v))}</td>" for c, v in zip(frame.columns, row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def rows_table(header: tuple[str, ...], rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(header))


def image_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def pairs_html(pairs: pd.DataFrame) -> str:
    if pairs.empty:
        return '<p class="note">No near-duplicate answers from different systems at this threshold.</p>'
    blocks = []
    for r in pairs.itertuples(index=False):
        a, b = highlight_shared(str(r.text_a), str(r.text_b))
        kind = "identical text" if str(r.exact).lower() in {"true", "1"} else "near duplicate"
        blocks.append(
            f'<div class="pair"><div class="head"><b>{html.escape(str(r.prompt_id))}</b>: '
            f'{html.escape(textwrap.shorten(str(r.prompt), 240, placeholder=" …"))} '
            f'<span class="meta">— similarity {num(r.similarity)}, {kind}</span></div>'
            f'<div class="cols"><div class="col"><div class="sys">{html.escape(str(r.system_a))}</div>{a}</div>'
            f'<div class="col"><div class="sys">{html.escape(str(r.system_b))}</div>{b}</div></div></div>')
    return "".join(blocks)


def build_html(config: RunConfig, t: Tables, h: Headline, folder: Path, maps: list[PromptMap],
               map_note: str | None) -> str:
    e = html.escape
    info = t.info
    level = pct((info.get("bootstrap") or {}).get("level", 0.95), 0)
    cards = [
        (pct(h.share_above_08), "of prompts: a system's answers are > 0.8 similar (mean over systems)", ""),
        (span(h.inter_min, h.inter_max), "inter-model similarity between different systems",
         f"rescaled {span(h.inter_min_rescaled, h.inter_max_rescaled)}"),
        (num(h.floor) if h.floor is not None else "—", "floor: similarity of answers to different prompts",
         "rescaled = (x − floor) / (1 − floor)"),
        (num(h.intra_mean), "mean intra-model similarity", f"rescaled {num(h.intra_mean_rescaled)}"),
    ]
    parts = [
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>Hivemind report: {e(config.name)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>Hivemind report: {e(config.name)}</h1>",
        f'<div class="meta">{len(t.systems)} systems · {h.n_prompts} prompts · {h.n_responses} answers · '
        f"embedder {e(h.embedder)} · near-duplicate threshold {e(str(info.get('threshold', '')))} · "
        f"analysed {e(str(info.get('created_at', '')))} · hivemind {e(str(info.get('hivemind_version', '')))}</div>",
        '<div class="cards">' + "".join(
            f'<div class="card"><div class="v">{e(v)}</div><div class="l">{e(lab)}</div>'
            f'<div class="r">{e(r)}</div></div>' for v, lab, r in cards) + "</div>",
    ]
    warnings = info.get("warnings") or []
    if warnings:
        parts.append('<div class="warn">' + "<br>".join(e(str(w)) for w in warnings) + "</div>")
    parts.append("<h2>Headline figures</h2>")
    parts.append(html_table(rows_table(("figure", "value", "rescaled"), headline_rows(h) + diversity_rows(t)),
                            {"value", "rescaled"}))
    if t.reference:
        parts.append("<h2>This run vs the paper</h2>")
        parts.append(f'<p class="note">{e(str(t.reference.get("source", "Jiang et al. 2025")))}. The paper used '
                     f"{e(str(t.reference.get('samples', 50)))} samples per prompt and another embedder, so the "
                     f"levels are comparable in shape more than in value.</p>")
        parts.append(html_table(rows_table(("figure", "this run", "paper"), paper_rows(t, config, h)),
                                {"this run", "paper"}))
    per_setting = setting_rows(t)
    if per_setting is not None and len(per_setting) > 1:
        parts.append("<h2>Headline figures per decoding setting</h2>")
        parts.append(html_table(per_setting, set(per_setting.columns) - {"setting"}))
    parts += [
        "<h2>Intra-model repetition</h2>",
        '<p class="note">For every system and prompt, the mean cosine similarity among the system\'s answers; '
        "each cell is the % of prompts in that similarity bucket (the paper's Fig. 4).</p>",
        image_tag(folder / "intra_model_heatmap.png", "intra-model similarity buckets by system"),
        "<h2>Inter-model homogeneity</h2>",
        '<p class="note">Mean cosine similarity between answers of two different systems to the same prompt '
        "(the paper's Fig. 6).</p>",
        image_tag(folder / "inter_model_heatmap.png", "inter-model similarity matrix"),
        "<h2>Leaderboard</h2>",
        f'<p class="note">{e(gate_note(t))} Brackets: {level} bootstrap confidence intervals over prompts. '
        f"Near-dup rate: share of answers with a near duplicate (similarity ≥ "
        f"{e(str(info.get('threshold', '')))}) from another system. Rows marked <i>control</i> are synthetic "
        "systems made from this run's answers (hivemind analyze --controls); they show where known cases land "
        "and are not ranked.</p>",
        html_table(leaderboard_table(t), numeric_columns(leaderboard_table(t))),
        "<h2>Distinct systems among the nearest answers (Fig. 8)</h2>",
        (image_tag(folder / "fig8_neighbors.png", "Fig. 8 box plot") if (folder / "fig8_neighbors.png").is_file()
         else '<p class="note">No per-prompt neighbour table (re-run hivemind analyze).</p>'),
        f"<h2>{e(near_heading(t))}</h2>",
        f'<p class="note">The {TOP_PAIRS} most similar pairs, at most {PAIRS_PER_PROMPT} per prompt, both answers '
        f"at least {e(str(info.get('near_duplicate_min_words', 5)))} words long; highlighted: runs of "
        f"{MIN_SHARED_WORDS} or more words found in both answers.</p>",
        pairs_html(cross_system_pairs(t)),
        "<h3>Short-answer agreement</h3>",
        '<p class="note">Pairs where an answer is shorter than the minimum length ("Yes.", a single name): '
        "agreeing on a short correct answer is not homogeneity of ideas.</p>",
        pairs_html(shown_pairs(t, short=True)),
        "<h2>Shared phrases</h2>",
        '<p class="note">Word sequences used by several systems in answers to the same prompt.</p>',
        html_table(phrases_table(t), {"words", "systems"}) if not t.shared_phrases.empty
        else '<p class="note">No shared phrases found.</p>',
        "<h2>Lexical diversity</h2>",
        '<p class="note">distinct-n: distinct n-grams / all n-grams over a system\'s answers (higher = more varied); '
        "compression ratio: raw / gzip size (higher = more repetitive).</p>",
        html_table(lexical_table(t), {"distinct-1", "distinct-2", "distinct-3", "compression ratio", "mean words"}),
        "<h2>Prompt maps</h2>",
        '<p class="note">The most homogeneous prompts: every answer projected on the first two principal '
        "components of its embedding, one colour per system.</p>",
    ]
    if maps:
        parts.append('<div class="maps">' + "".join(image_tag(folder / m.file, f"prompt map {m.prompt_id}")
                                                   for m in maps) + "</div>")
    else:
        parts.append(f'<p class="note">{e(map_note or "No prompt maps.")}</p>')
    parts.append(browser_section(config))
    parts.append("</main></body></html>")
    return "\n".join(parts)


# Markdown ------------------------------------------------------------------------------------------
def md_cell(value) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def md_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(md_cell(c) for c in frame.columns) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def build_markdown(config: RunConfig, t: Tables, h: Headline, maps: list[PromptMap]) -> str:
    info = t.info
    pairs = cross_system_pairs(t)
    short_pairs = shown_pairs(t, short=True)

    def pair_frame(pairs: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({
            "prompt": pairs["prompt_id"], "system a": pairs["system_a"], "system b": pairs["system_b"],
            "similarity": pairs["similarity"].map(num),
            "answer a": pairs["text_a"].map(lambda s: textwrap.shorten(str(s), 160, placeholder=" …")),
            "answer b": pairs["text_b"].map(lambda s: textwrap.shorten(str(s), 160, placeholder=" …"))})
    shown, short_table = pair_frame(pairs), pair_frame(short_pairs)
    out = [f"# Hivemind report: {config.name}", "",
           f"{len(t.systems)} systems, {h.n_prompts} prompts, {h.n_responses} answers; embedder {h.embedder}; "
           f"analysed {info.get('created_at', '')}.", ""]
    out += [f"> {w}" for w in info.get("warnings") or []]
    out += ["", "## Headline figures", "",
            md_table(rows_table(("figure", "value", "rescaled"), headline_rows(h) + diversity_rows(t))), ""]
    if t.reference:
        out += ["## This run vs the paper", "",
                md_table(rows_table(("figure", "this run", "paper"), paper_rows(t, config, h))), ""]
    out += ["## Intra-model repetition", "", "![intra-model heatmap](intra_model_heatmap.png)", "",
            "## Inter-model homogeneity", "", "![inter-model heatmap](inter_model_heatmap.png)", "",
            "## Leaderboard", "", gate_note(t), "", md_table(leaderboard_table(t)), "",
            "## Distinct systems among the nearest answers (Fig. 8)", "", "![Fig. 8](fig8_neighbors.png)", "",
            f"## {near_heading(t)}", "",
            md_table(shown) if not pairs.empty else "None at this threshold.", "",
            "### Short-answer agreement", "",
            md_table(short_table) if not short_pairs.empty else "None.", "",
            "## Shared phrases", "", md_table(phrases_table(t)) if not t.shared_phrases.empty else "None.", "",
            "## Lexical diversity", "", md_table(lexical_table(t)), "", "## Prompt maps", ""]
    out += [f"![{m.prompt_id}]({m.file})" for m in maps] or ["None."]
    return "\n".join(out) + "\n"


# The stage -----------------------------------------------------------------------------------------
def render_report(config: RunConfig, top_prompts: int = 3) -> Path:
    """Write the figures, report.html and report.md into the run folder; returns report.html's path."""
    from hivemind.store import check_folder, file_error

    check_folder(config.run_dir)
    tables = load_tables(config)              # every check before anything is written
    h = headline(tables)
    run_dir = config.run_dir
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=run_dir))
    except OSError as err:
        raise file_error(err, "write the report", run_dir) from None
    try:
        save_figure(plot_intra_heatmap(tables.buckets), tmp / "intra_model_heatmap.png")
        save_figure(plot_inter_heatmap(tables.inter), tmp / "inter_model_heatmap.png")
        extra = []
        if tables.by_n is not None and len(tables.by_n):
            save_figure(fig8_figure(tables.by_n), tmp / "fig8_neighbors.png")
            extra.append("fig8_neighbors.png")
        maps, note = load_prompt_maps(config, top_prompts_frame(tables.homogeneity, top_prompts))
        for m in maps:
            save_figure(plot_prompt_map(m.vectors, m.systems, tables.systems, m.prompt, m.similarity), tmp / m.file)
        (tmp / "report.html").write_text(build_html(config, tables, h, tmp, maps, note), encoding="utf-8")
        (tmp / "report.md").write_text(build_markdown(config, tables, h, maps), encoding="utf-8")
        names = ["intra_model_heatmap.png", "inter_model_heatmap.png", *extra, *(m.file for m in maps),
                 "report.md", "report.html"]
        for name in names:
            os.replace(tmp / name, run_dir / name)
        scan_paths([run_dir / name for name in names], config, remove=True)  # no key in a report
        for old in run_dir.glob("prompt_map_*.png"):          # maps of prompts no longer in the top
            if old.name not in names:
                old.unlink()
    except OSError as err:
        raise file_error(err, "write the report", run_dir) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return run_dir / "report.html"
