"""The report's first screen: what did this run find?

Two or three findings written from the numbers (the ends of the ranking with their intervals, the closest pair
of systems, the share of prompts above the paper's line beside the paper's own figure), a compact ranking and
the run's settings (so "57% truncated" has a visible cause). Plus what keeps the tables below readable: columns
that are the same (or undefined) for every system are folded into a one-line note, and figures that would
draw noise (Fig. 8 with N capped everywhere, categories all too small) say so instead.

Everything comes from the analysed tables (hivemind.report.load) and the metric directions declared once in
hivemind.results.contract; the text is plain (the HTML and Markdown writers escape it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hivemind.core.config import RunConfig, System
from hivemind.core.stats import nanmean
from hivemind.report.load import Tables
from hivemind.report.paper import PAPER_REFERENCE
from hivemind.report.tables import Headline, fmt_metric, is_true, num, pct, primary_of, span, with_ci
from hivemind.results import contract as results

UNDEFINED = {"—", "", "nan", "None"}
RANKING_METRICS = ["pass_rate", "intra_mean", "inter_mean_others"]     # beside the primary key, first screen
# Decoding parameters in the order a reader looks for them; any other key follows, sorted.
PARAM_ORDER = ["temperature", "top_p", "min_p", "top_k", "max_tokens"]


# Findings ------------------------------------------------------------------------------------------
def findings(t: Tables, config: RunConfig, h: Headline) -> list[str]:
    """Two or three sentences that answer "what did this run find?", each naming systems and numbers."""
    found = [extremes_finding(t), closest_pair_finding(t), paper_line_finding(t, config, h)]
    return [f for f in found if f]


def ranked_systems(t: Tables) -> pd.DataFrame:
    """The real systems' leaderboard rows, most diverse first (the one ranking of results.contract)."""
    return results.sort_by_primary(t.leaderboard.reset_index(), primary_of(t))


def estimate(row: dict, metric: str) -> str:
    """"0.412 [0.390, 0.431]": a leaderboard value with its bootstrap interval where it has one."""
    return with_ci(row.get(metric), row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high"),
                   lambda v: fmt_metric(metric, v))


def level_of(t: Tables) -> str:
    return pct((t.info.get("bootstrap") or {}).get("level", 0.95), 0)


def extremes_finding(t: Tables) -> str | None:
    """The most and the least diverse system by the primary key, and whether their intervals are apart."""
    primary = primary_of(t)
    metric = results.METRICS[primary]
    ranked = ranked_systems(t).dropna(subset=[primary])
    records = ranked.to_dict("records")
    if not records:
        return None
    top, bottom = records[0], records[-1]
    if len(records) == 1:
        return f"One system: {top['system']}, {metric.display} {estimate(top, primary)}."
    if round(float(top[primary]), 4) == round(float(bottom[primary]), 4):
        return f"Every system ties on {metric.display} at {fmt_metric(primary, top[primary])}."
    text = (f"Most diverse: {top['system']} ({metric.display} {estimate(top, primary)}); least diverse: "
            f"{bottom['system']} ({estimate(bottom, primary)}).")
    bounds = [top.get(f"{primary}_ci_low"), top.get(f"{primary}_ci_high"),
              bottom.get(f"{primary}_ci_low"), bottom.get(f"{primary}_ci_high")]
    if not any(b is None or pd.isna(b) for b in bounds):
        apart = bounds[0] > bounds[3] or bounds[2] > bounds[1]
        text += (f" Their {level_of(t)} intervals do not overlap." if apart else
                 f" Their {level_of(t)} intervals overlap: on these prompts the two ends of the ranking are not "
                 f"clearly apart.")
    return text


@dataclass(frozen=True)
class Pair:
    system_a: str
    system_b: str
    similarity: float


def system_pairs(t: Tables) -> list[Pair]:
    """Every pair of different systems with its mean cosine (Fig. 6, symmetrised), most similar first."""
    names = [str(s) for s in t.inter.index]
    values = t.inter.to_numpy(dtype=np.float64)
    values = (values + values.T) / 2
    pairs = [Pair(names[i], names[j], float(values[i, j]))
             for i in range(len(names)) for j in range(i + 1, len(names)) if np.isfinite(values[i, j])]
    return sorted(pairs, key=lambda p: -p.similarity)


def closest_pair_finding(t: Tables) -> str | None:
    pairs = system_pairs(t)
    if not pairs:
        return None
    first = pairs[0]
    text = (f"Closest pair: {first.system_a} and {first.system_b}, mean cosine {num(first.similarity)} between "
            f"their answers to the same prompts")
    if len(pairs) < 3:
        return text + "."
    last = pairs[-1]
    mean = float(np.mean([p.similarity for p in pairs]))
    return (text + f"; farthest: {last.system_a} and {last.system_b} ({num(last.similarity)}); mean over all "
            f"{len(pairs)} pairs {num(mean)}.")


def paper_line_finding(t: Tables, config: RunConfig, h: Headline) -> str | None:
    """The share of prompts above the paper's 0.8 line beside the paper's own figure, per decoding setting;
    a one-answer run gets the inter-model range beside the paper's instead (its intra is undefined)."""
    ref = t.reference or PAPER_REFERENCE
    paper_embedder, paper_samples = ref.get("embedder", "its embedder"), ref.get("samples", 50)
    shares = t.buckets["above_0.8"].astype(np.float64)
    if shares.isna().all():
        paper_range = ref.get("inter_model_similarity_range") or [np.nan, np.nan]
        return (f"One answer per system and prompt, so the paper's within-system figure (share of prompts above "
                f"0.8) is undefined here; between systems the mean cosine spans {span(h.inter_min, h.inter_max)} "
                f"(the paper: {span(paper_range[0], paper_range[1], 2)} with {paper_embedder}).")
    paper_share = ref.get("share_above_0.8") or {}
    settings = {s.name: results.setting_of(s.params) for s in config.systems}
    by_setting = {}
    for label in ("top-p", "min-p"):
        names = [n for n, setting in settings.items() if setting == label and n in shares.index]
        if names:
            by_setting[label] = nanmean(shares[names])
    if len(by_setting) == 1:
        label = next(iter(by_setting))
        compared = f"mean over systems, all {label}; the paper: {pct(paper_share.get(label))}"
    else:
        compared = "mean over systems; " + ", ".join(
            f"{label} {pct(value, 0)} (the paper: {pct(paper_share.get(label))})" for label, value in by_setting.items())
    text = (f"On {pct(h.share_above_08, 0)} of prompts a system's answers are more than 0.8 similar to each "
            f"other ({compared}).")
    if h.calibrated_line is not None and not pd.isna(h.share_above_08_calibrated):
        text += f" Above the calibrated line {num(h.calibrated_line)}: {pct(h.share_above_08_calibrated, 0)}."
    return text + (f" The paper: {paper_samples} samples per prompt, {paper_embedder}; this run: {config.samples}, "
                   f"{h.embedder}.")


# The compact ranking ---------------------------------------------------------------------------------
def ranking_table(t: Tables) -> pd.DataFrame:
    """Rank, system, the primary key with its interval, pass rate, intra and inter: the first screen's
    ranking (the full leaderboard, with every metric and the controls, is further down)."""
    primary = primary_of(t)
    rows = []
    for r in ranked_systems(t).to_dict("records"):
        rank = r.get("rank")
        row = {"rank": "—" if rank is None or pd.isna(rank) or rank == "" else str(rank), "system": r["system"],
               f"{results.labelled(primary)} [{level_of(t)} CI]": estimate(r, primary)}
        for metric in RANKING_METRICS:
            row[results.labelled(metric)] = fmt_metric(metric, r.get(metric))
        rows.append(row)
    return pd.DataFrame(rows)


# Settings ------------------------------------------------------------------------------------------
def settings_rows(t: Tables, config: RunConfig, h: Headline, imported: bool = False) -> list[tuple[str, str]]:
    """(setting, value) rows: what was asked, how often, how it was decoded, embedded, compared and gated."""
    info = t.info
    rows = [("prompts", prompts_text(config, h, imported)),
            ("samples", f"{config.samples} per system and prompt ({h.n_responses} answers analysed)")]
    rows += decoding_rows(config.systems, imported)
    cut = truncation_text(t)
    if cut:
        rows.append(("cut at max_tokens", cut))
    rows.append(("embedder", h.embedder))
    rows.append(("equivalence", equivalence_text(info)))
    rows.append(("quality gate", gate_text(info)))
    rows.append(("near duplicates", f"cosine ≥ {info.get('threshold', config.near_duplicate_threshold)}"))
    return rows


def prompts_text(config: RunConfig, h: Headline, imported: bool) -> str:
    """"8 from demo.jsonl (a seeded subset ...)": a prompt file by its name only (a report never names a
    folder of this machine: snapshots refuse one), a dataset by its id."""
    source = Path(config.prompts).name if isinstance(config.prompts, str) else config.prompts.dataset
    text = f"{h.n_prompts} from {'imported generations' if imported else source}"
    if config.limit and not imported:
        text += f" (a seeded subset: limit {config.limit}, seed {config.seed})"
    return text


def params_text(params: dict, imported: bool) -> str:
    """"temperature 1.0, top_p 0.9, max_tokens 64"; max_tokens is always named (its absence too)."""
    if not params:
        return "not recorded (imported answers)" if imported else "provider defaults; max_tokens not set"
    keys = [k for k in PARAM_ORDER if k in params] + sorted(k for k in params if k not in PARAM_ORDER)
    text = ", ".join(f"{k} {params[k]}" for k in keys)
    return text if "max_tokens" in params else text + ", max_tokens not set"


def decoding_rows(systems: list[System], imported: bool) -> list[tuple[str, str]]:
    """One row per distinct decoding setting, naming its systems ("all 16 systems" when they share one)."""
    groups: dict[str, list[str]] = {}
    for s in systems:
        groups.setdefault(params_text(s.params, imported), []).append(s.name)
    if len(groups) == 1:
        label = "decoding" if len(systems) == 1 else f"decoding (all {len(systems)} systems)"
        return [(label, next(iter(groups)))]
    return [(f"decoding: {', '.join(names)}", text) for text, names in groups.items()]


def truncation_text(t: Tables) -> str | None:
    """Per system, the share of its answers cut at the token limit (results.json), where any was: the visible
    cause of a low pass rate or a short answer. None when no answer was cut or the run predates results.json."""
    if not t.outcomes:
        return None
    shares = {name: t.outcomes[name].truncated_share for name in t.systems if name in t.outcomes}
    if not any(share for share in shares.values()):
        return None
    return ", ".join(f"{name} {pct(share, 0)}" for name, share in shares.items() if share is not None)


def equivalence_text(info: dict) -> str:
    record = info.get("equivalence") or {}
    if not isinstance(record, dict) or not record.get("method"):
        return "— (analysed before the method was recorded)"
    method, ident = str(record["method"]), str(record.get("id") or "")
    return ident if ident.startswith(method) else (f"{method} ({ident})" if ident else method)


def gate_text(info: dict) -> str:
    gate = info.get("quality_gate") or {}
    return str(gate.get("description") or "none")


# Folding columns that cannot tell systems apart ----------------------------------------------------------
@dataclass
class Folded:
    shown: pd.DataFrame
    constant: dict[str, str] = field(default_factory=dict)    # column -> the one value every row has
    undefined: list[str] = field(default_factory=list)        # columns that are "—" in every row


def fold_columns(frame: pd.DataFrame, keep: tuple[str, ...] = ("rank", "system")) -> Folded:
    """The table without the columns that are the same in every row, or undefined in every row: they take
    the space of the columns that tell systems apart. A table of one row folds nothing."""
    if len(frame) < 2:
        return Folded(frame)
    constant, undefined = {}, []
    for column in frame.columns:
        if column in keep:
            continue
        values = [str(v).strip() for v in frame[column]]
        if all(v in UNDEFINED for v in values):
            undefined.append(column)
        elif len(set(values)) == 1:
            constant[column] = values[0]
    dropped = set(constant) | set(undefined)
    return Folded(frame[[c for c in frame.columns if c not in dropped]], constant, undefined)


def fold_note(folded: Folded, one_answer: bool = False) -> str | None:
    """One line saying which columns were folded and why; None when nothing was."""
    parts = []
    if folded.constant:
        parts.append("the same for every system, so they cannot tell systems apart: "
                     + "; ".join(f"{c} {v}" for c, v in folded.constant.items()))
    if folded.undefined:
        why = " (one answer per system and prompt: figures within a system need two or more)" if one_answer else ""
        parts.append(f"undefined for every system{why}: {', '.join(folded.undefined)}")
    return ("Columns not shown, " + "; and ".join(parts) + ".") if parts else None


def one_answer_run(t: Tables) -> bool:
    return t.buckets["above_0.8"].isna().all()


# Figures that would draw noise ---------------------------------------------------------------------------
def fig8_ns(by_n: pd.DataFrame) -> list[int]:
    """The Ns of Fig. 8 whose boxes differ: an N whose every prompt is capped at the answers it has counts the
    same neighbours as the N before it, so it and every larger N are left out."""
    ns = sorted(int(n) for n in by_n["n"].unique())
    used = by_n.pivot_table(index="prompt_id", columns="n", values="n_used", aggfunc="first")
    kept = ns[:1]
    for n in ns[1:]:
        if not (used[n] > used[kept[-1]]).any():
            break
        kept.append(n)
    return kept


def fig8_note(by_n: pd.DataFrame | None) -> str | None:
    """Why Fig. 8 shows fewer Ns than the analysis computed (or is not drawn); None when it shows them all."""
    if by_n is None or by_n.empty:
        return None
    ns = sorted(int(n) for n in by_n["n"].unique())
    kept = fig8_ns(by_n)
    most = int(by_n["n_used"].max())
    if len(kept) < 2:
        return (f"Fig. 8 not drawn: no prompt has more than {most} other answers, so every N from {ns[0]} to "
                f"{ns[-1]} counts the same neighbours (one box repeated); the per-system figure is the "
                f"leaderboard's distinct neighbours column.")
    if len(kept) < len(ns):
        return (f"N above {kept[-1]} is left out: no prompt has more than {most} other answers, so larger N "
                f"count the same neighbours as N = {kept[-1]}.")
    return None


def categories_too_small(t: Tables) -> str | None:
    """One line instead of the category tables when every category has too few prompts to compare."""
    frame = t.categories
    if frame is None or frame.empty or "few_prompts" not in frame:
        return None
    rows = frame[frame["system"] == "ALL"]
    if rows.empty or not is_true(rows["few_prompts"]).all():
        return None
    return (f"All {len(rows)} prompt categories have too few prompts to compare (at most "
            f"{int(rows['n_prompts'].max())} each), so no table is drawn; the figures are in "
            f"category_breakdown.csv.")
