"""The analysed tables a report reads, checked against the config, and the tables and headline rows shown
in both reports (HTML and Markdown).

Everything is read from the tables that `analyze_run` wrote into the run folder (plus the store, for the
prompt maps' vectors), checked against the config before anything is drawn.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hivemind.core.errors import HivemindError
from hivemind.results import contract as results
from hivemind.core.config import RunConfig
from hivemind.analyze.neighbors import EXAMPLES_PER_PROMPT, N_EXAMPLES, spread_examples
from hivemind.results.folder import ANALYSIS
from hivemind.analyze.similarity import BUCKET_LABELS, FLOOR_TOLERANCE
from hivemind.core.stats import nanmean

REFERENCE_NAME = "paper_reference.json"
REQUIRED = [ANALYSIS, "intra_model_buckets.csv", "inter_model_similarity.csv",
            "inter_model_similarity_rescaled.csv", "prompt_homogeneity.csv", "near_duplicates.csv",
            "shared_phrases.csv", "lexical_diversity.csv", "leaderboard.csv"]
# Columns read as text whatever they look like ("1" stays a prompt id, "NA" stays a name or an answer).
TEXT_COLUMNS = {"system", "system_a", "system_b", "prompt_id", "prompt", "text_a", "text_b", "phrase", "category",
                "level", "scorer",
                "systems", "model", "kind", "setting", "rank", "setting_a", "setting_b"}
PAIRS_PER_PROMPT = EXAMPLES_PER_PROMPT    # near-duplicate pairs shown per prompt
PHRASES_PER_PROMPT = 3        # shared phrases shown per prompt
MIN_SHARED_WORDS = 5          # phrases of this many words shared by two answers are highlighted
TOP_PAIRS = N_EXAMPLES
TOP_PHRASES = 15



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
    categories: pd.DataFrame | None = None  # category_breakdown.csv (prompts with categories)
    gate_by_scorer: pd.DataFrame | None = None  # gate_by_scorer.csv (runs with two or more gating scorers)
    outcomes: dict | None = None          # system -> results.json entry (answers, truncated, errors, cost)


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
        info = json.loads((run_dir / ANALYSIS).read_text(encoding="utf-8"))
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
                    for name in ("neighbor_diversity_by_n.csv", "setting_headlines.csv", "cross_setting_pairs.csv",
                                 "category_breakdown.csv", "gate_by_scorer.csv")}
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
                  cross_setting=optional["cross_setting_pairs.csv"], coverage=load_coverage(run_dir, info),
                  categories=optional["category_breakdown.csv"], gate_by_scorer=optional["gate_by_scorer.csv"],
                  outcomes=load_outcomes(run_dir))


def load_outcomes(run_dir: Path) -> dict | None:
    """Per system its collection outcome from results.json (the numbers the terminal summary printed);
    None for a run analysed before results.json existed."""
    from hivemind.results.record import read_results

    data = read_results(run_dir)
    return None if data is None else {s.system: s for s in data.systems}


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
    """The one ranking (results/contract.py): the primary key first, rank 1 = most diverse, ties shown '2=';
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
        if t.outcomes is not None:
            row.update(outcome_cells(t.outcomes.get(name)))
        rows.append(row)
    return pd.DataFrame(rows)


def outcome_cells(outcome) -> dict[str, str]:
    """Blank answers (a count), truncated and failed shares and cost, as results.json has them ("—" for
    controls). Blank answers and failed requests count as answers failing the quality gate."""
    if outcome is None or outcome.answers is None:
        return {"blank": "—", "truncated": "—", "failed": "—", "cost (USD)": "—"}
    cost = outcome.cost_usd
    return {"blank": "—" if outcome.blank is None else str(outcome.blank), "truncated": pct(outcome.truncated_share),
            "failed": pct(outcome.error_share), "cost (USD)": "—" if cost is None else f"{cost:.4g}"}


def numeric_columns(frame: pd.DataFrame) -> set[str]:
    return {c for c in frame.columns if c not in ("system", "model")}


def gate_note(t: Tables) -> str:
    gate = t.info.get("quality_gate") or {}
    primary = primary_of(t)
    metric = results.METRICS[primary]
    return (f"Ranked by {metric.display} ({metric.direction} when higher; {metric.reference}); rank 1 = most "
            f"diverse, equal values share a rank (\"2=\"). Quality gate: {gate.get('description', 'none')}. "
            f"A blank answer (empty or whitespace; column blank) or a failed request counts as an answer failing "
            f"the gate: it lowers the pass rate, effective diversity and utility, and is left out of the "
            f"similarity figures.")


def setting_rows(t: Tables) -> pd.DataFrame | None:
    if t.settings is None or t.settings.empty:
        return None
    return pd.DataFrame({
        "setting": t.settings["setting"], "systems": t.settings["n_systems"].map(lambda v: str(int(v))),
        "share > 0.8": t.settings["share_above_0.8"].map(pct), "intra mean": t.settings["intra_mean"].map(num),
        "inter range (same setting)": [span(lo, hi) for lo, hi in zip(t.settings["inter_min"], t.settings["inter_max"])]})


def shown_pairs(t: Tables, short: bool) -> pd.DataFrame:
    """Near-duplicate pairs, at most PAIRS_PER_PROMPT per prompt, round-robin over prompts (most similar
    first), long answers and short ones apart."""
    near = t.near_duplicates
    if "short" in near:
        flag = near["short"].astype(str).str.lower().isin({"true", "1"})
        near = near[flag] if short else near[~flag]
    elif short:
        near = near.iloc[0:0]
    pairs = near[near["system_a"] != near["system_b"]]
    pairs = spread_examples(pairs, per_prompt=PAIRS_PER_PROMPT, n=TOP_PAIRS)
    prompts = dict(zip(t.homogeneity["prompt_id"], t.homogeneity["prompt"]))
    pairs["prompt"] = [prompts.get(p, "") for p in pairs["prompt_id"]]
    return pairs


def near_heading(t: Tables) -> str:
    return (f"Near-duplicate answers from different systems (cosine ≥ {t.info.get('threshold', '')}, "
            f"embedder {t.info.get('embedder', '')})")


def cross_system_pairs(t: Tables, n: int = TOP_PAIRS) -> pd.DataFrame:
    return shown_pairs(t, short=False).head(n)


def phrases_table(t: Tables, n: int = TOP_PHRASES) -> pd.DataFrame:
    """The most widely shared phrases, at most PHRASES_PER_PROMPT per prompt, spread over prompts; phrases
    that are mostly the prompt's own words (in_prompt) are left out: restating the question is no shared idea."""
    ph = own_phrases(t.shared_phrases)
    ph = ph.assign(_rank=ph["n_systems"] * 1000 + ph["n_words"])       # systems first, then length (<= 200)
    ph = spread_examples(ph, per_prompt=PHRASES_PER_PROMPT, n=n, score="_rank")
    if ph.empty:
        return pd.DataFrame(columns=["phrase", "words", "systems", "prompt", "shared by"])
    return pd.DataFrame({"phrase": ph["phrase"], "words": ph["n_words"], "systems": ph["n_systems"],
                         "prompt": ph["prompt_id"], "shared by": ph["systems"].map(short_list)})


def own_phrases(phrases: pd.DataFrame) -> pd.DataFrame:
    """Shared phrases that are not the prompt's own wording (all of them for tables without in_prompt)."""
    if "in_prompt" not in phrases:
        return phrases
    echo = phrases["in_prompt"].astype(str).str.lower().isin({"true", "1"})
    return phrases[~echo]


def n_echo_phrases(t: Tables) -> int:
    return len(t.shared_phrases) - len(own_phrases(t.shared_phrases))


def phrases_note(t: Tables) -> str:
    echo = n_echo_phrases(t)
    note = (f"Word sequences used by several systems in answers to the same prompt: the most widely shared, at "
            f"most {PHRASES_PER_PROMPT} per prompt, spread over prompts.")
    if echo:
        note += (f" Left out: {echo} phrase(s) mostly made of the prompt's own words (in_prompt in "
                 f"shared_phrases.csv); answers that restate the question share no idea.")
    return note


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


def rows_table(header: tuple[str, ...], rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(header))


# Per prompt category (category_breakdown.csv) -------------------------------------------------------
def is_true(values: pd.Series) -> pd.Series:
    return values.astype(str).str.lower().isin({"true", "1"})


def category_table(t: Tables) -> pd.DataFrame | None:
    """Every headline metric per category (the ALL rows), with its number of prompts; a category with too
    few prompts is flagged, not dropped. None when the run's prompts carry no categories."""
    frame = t.categories
    if frame is None or frame.empty or "system" not in frame:
        return None
    rows = frame[frame["system"] == "ALL"]
    primary = primary_of(t)
    get = lambda column: rows[column] if column in rows else pd.Series(np.nan, index=rows.index)
    return pd.DataFrame({
        "category": rows["category"], "level": rows["level"], "prompts": rows["n_prompts"].map(lambda v: str(int(v))),
        "share > 0.8": get("share_above_0.8").map(pct), "intra mean": get("mean_intra").map(num),
        "inter (prompt similarity)": get("mean_prompt_similarity").map(num),
        f"{results.METRICS[primary].display} (mean)": get(primary).map(num),
        "pooled Vendi": get("pooled_vendi").map(lambda v: num(v, 2)),
        "pooled distinct ideas": get("pooled_distinct_ideas").map(lambda v: num(v, 2)),
        "note": ["few prompts: too noisy to compare" if few else "" for few in is_true(get("few_prompts"))]})


def category_by_system(t: Tables) -> pd.DataFrame | None:
    """The primary key per system (rows) and category (columns; top-level categories where the taxonomy
    has two levels), from the per-system rows of category_breakdown.csv."""
    frame = t.categories
    primary = primary_of(t)
    if frame is None or frame.empty or primary not in frame:
        return None
    level = "top" if (frame["level"] == "top").any() else "category"
    rows = frame[(frame["system"] != "ALL") & (frame["level"] == level)]
    if rows.empty:
        return None
    table = rows.pivot_table(index="system", columns="category", values=primary, aggfunc="first", dropna=False)
    table = table.reindex([s for s in t.systems if s in table.index])
    shown = table.map(num)
    shown.insert(0, "system", shown.index)
    return shown.reset_index(drop=True)


def category_note(t: Tables) -> str:
    few = int(is_true(t.categories.loc[t.categories["system"] == "ALL", "few_prompts"]).sum()) \
        if t.categories is not None and "few_prompts" in t.categories else 0
    note = ("Every headline metric per prompt category, with its number of prompts (a two-level category "
            "\"Top > Fine\" counts under both levels; prompts without one under \"(none)\").")
    if few:
        note += f" {few} categor{'y has' if few == 1 else 'ies have'} too few prompts to compare (flagged)."
    return note


# Quality gate by scorer (gate_by_scorer.csv) --------------------------------------------------------
def gate_scorer_table(t: Tables) -> pd.DataFrame | None:
    """One row per system: pass rate and primary key under the run's gate and under each scorer alone,
    and their spreads over scorers. None when the run has no gate_by_scorer.csv (fewer than 2 gating scorers)."""
    frame = t.gate_by_scorer
    if frame is None or frame.empty:
        return None
    metric = str(frame["metric"].iloc[0])
    display = results.METRICS[metric].display if metric in results.METRICS else metric
    gates = list(dict.fromkeys(frame["gate"]))
    rows = []
    for system in [s for s in t.systems if s in set(frame["system"])]:
        mine = frame[frame["system"] == system].set_index("gate")
        row = {"system": system}
        for gate in gates:
            label = "all scorers" if gate == "all" else gate
            row[f"pass rate: {label}"] = pct(mine.at[gate, "pass_rate"]) if gate in mine.index else "—"
        row["pass rate spread"] = pct(mine["pass_rate_spread"].iloc[0])
        for gate in gates:
            label = "all scorers" if gate == "all" else gate
            row[f"{display}: {label}"] = num(mine.at[gate, "value"]) if gate in mine.index else "—"
        row[f"{display} spread"] = num(mine["value_spread"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def gate_scorer_note(t: Tables) -> str:
    frame = t.gate_by_scorer
    singles = frame[frame["gate"] != "all"].drop_duplicates("gate")
    lines = ", ".join(f"{r.gate} >= {r.pass_at:g}" for r in singles.itertuples())
    return (f"How much the quality gate depends on which scorer gated: each system's pass rate and primary key "
            f"under the run's gate (all scorers) and under each gating scorer alone ({lines}; the relevance line "
            f"kept in every gate). Spread = max - min over the single-scorer gates; a large spread means the "
            f"system's figure rests on the choice of scorer.")
