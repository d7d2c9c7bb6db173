"""The headline and the tables shown in both reports (HTML and Markdown), from the analysed tables
(hivemind.report.load): the figures formatted, the examples chosen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hivemind.analyze.neighbors import EXAMPLES_PER_PROMPT, N_EXAMPLES, spread_examples
from hivemind.analyze.similarity import BUCKET_LABELS, FLOOR_TOLERANCE
from hivemind.core.config import RunConfig
from hivemind.core.stats import nanmean
from hivemind.report.load import Tables
from hivemind.results import contract as results

PAIRS_PER_PROMPT = EXAMPLES_PER_PROMPT    # near-duplicate pairs shown per prompt
PHRASES_PER_PROMPT = 3        # shared phrases shown per prompt
MIN_SHARED_WORDS = 5          # phrases of this many words shared by two answers are highlighted
TOP_PAIRS = N_EXAMPLES
TOP_PHRASES = 15


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
               f"{results.labelled(primary)} [CI]": ci(primary), "system": name, "model": r["model"]}
        for m in SHOWN:
            label = results.labelled(m)        # relative figures marked (results.RELATIVE_NOTE)
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
            f"diverse, equal values share a rank (\"2=\"). Quality gate: {gate.get('description', 'none')}"
            f"{gated_by(gate)}. "
            f"A blank answer (empty or whitespace; column blank) or a failed request counts as an answer failing "
            f"the gate: it lowers the pass rate, effective diversity and utility, and is left out of the "
            f"similarity figures. {calibration_note(t)}{results.RELATIVE_NOTE}.")


def calibration_note(t: Tables) -> str:
    """Which pinned calibration the own figures were measured against (analysis.json `calibration`)."""
    record = t.info.get("calibration")
    if not isinstance(record, dict):
        return ""
    return (f"Own figures are measured against the calibration pinned for this prompt set and embedder (floor "
            f"{num(record.get('floor'))}, relevance line {num(record.get('relevance_line'))}, from the answers of "
            f"{', '.join(map(str, record.get('reference') or []))}), so they do not move when systems join or "
            f"leave the run. ")


def gated_by(gate: dict) -> str:
    """ " (gated by: relevance, fluency)", or "" for an analysis written before analysis.json named them."""
    names = gate.get("gated_by")
    if names is None:
        return ""
    return f" (gated by: {', '.join(names)})" if names else " (nothing gated: only blank answers and failed requests fail)"


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
