"""The results contract: every results table, its columns, and each metric's direction and display name.

analyze writes these tables, report and leaderboard read them, and tests check them against this module.
One ranking everywhere: rank 1 is the MOST DIVERSE system, by the primary key (a quality-gated metric),
which is the first metric column of leaderboard.csv. Equal values (at the displayed precision) share a
rank, shown as a tie ("2=").

Primary key: effective diversity (Shypula et al. 2025). Chosen over an effective (quality-weighted) Vendi
score because it is a mean over pairs, bounded in [0, 2] and comparable across sample counts (a Vendi
score is an effective *count* that grows with n), it is exact from vector sums at any scale, it is the
gated counterpart of the paper's mean pairwise similarity, and failing or copied answers drive it to 0.
A run with one answer per system and prompt has no pairs within a system; its primary key is effective
distinctness (the same gated distance, to the other systems' answers), and analysis.json names it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hivemind.results.folder import RESULTS

FORMAT_VERSION = 2
# The fixed colour scale of every similarity figure (cosine), so two runs' figures compare by eye; the report
# adds a data-range view beside it, and analysis.json records this scale.
SIMILARITY_SCALE = (0.0, 1.0)

DIVERSE = "more diverse"            # higher value = more diverse
HOMOGENEOUS = "more homogeneous"    # higher value = more homogeneous
NEUTRAL = "neutral"                 # a count or a description, not a ranking


@dataclass(frozen=True)
class Metric:
    name: str
    display: str
    direction: str
    reference: str
    fmt: str = "num"        # num | pct | int
    # Relative by nature: measured against the other systems in the run, so it moves when one joins or leaves
    # (every other figure is a system's own, fixed by its answers and the pinned calibration).
    relative: bool = False


METRICS = {m.name: m for m in [
    Metric("effective_diversity", "effective diversity", DIVERSE,
           "Shypula et al. 2025: mean pairwise cosine distance, pairs with an answer failing the quality gate count 0"),
    Metric("effective_distinctness", "effective distinctness", DIVERSE,
           "gated mean cosine distance to the other systems' answers to the same prompt (one-answer runs)",
           relative=True),
    Metric("vendi", "Vendi score", DIVERSE, "Friedman & Dieng 2023: exp entropy of the eigenvalues of K/n"),
    Metric("distinct_ideas", "distinct ideas", DIVERSE,
           "NoveltyBench distinct_k (Zhang et al. 2025), threshold clustering on embeddings"),
    Metric("utility", "utility (p=0.8)", DIVERSE, "NoveltyBench: patience-weighted quality of distinct classes"),
    Metric("pass_rate", "quality pass rate", NEUTRAL, "share of answers passing the quality gate", "pct"),
    Metric("intra_mean", "intra mean", HOMOGENEOUS, "Jiang et al. 2025 Fig. 4: mean pairwise cosine per prompt"),
    Metric("share_above_0.8", "share > 0.8", HOMOGENEOUS, "Jiang et al. 2025: prompts with intra > 0.8", "pct"),
    Metric("inter_mean_others", "inter (vs others)", HOMOGENEOUS, "Jiang et al. 2025 Fig. 6", relative=True),
    Metric("near_duplicate_rate", "near-dup rate", HOMOGENEOUS,
           "share of answers with a near duplicate from another system", "pct", relative=True),
    Metric("mean_distinct_neighbors", "distinct neighbours", DIVERSE,
           "Jiang et al. 2025 Fig. 8: distinct systems among an answer's nearest answers", relative=True),
    Metric("distinct_2_per_prompt", "distinct-2 (per prompt)", DIVERSE,
           "Li et al. 2016 distinct-n within each (system, prompt), first 50 words per answer"),
    Metric("compression_per_prompt", "compression (per prompt)", HOMOGENEOUS,
           "raw / zlib size within each (system, prompt), first 50 words per answer"),
    Metric("distinct_2", "distinct-2 (pooled)", DIVERSE, "distinct-n over all of a system's answers"),
    Metric("compression_ratio", "compression (pooled)", HOMOGENEOUS, "raw / zlib size of all a system's answers"),
    Metric("n_prompts", "prompts", NEUTRAL, "", "int"),
    Metric("n_responses", "answers", NEUTRAL, "", "int"),
    Metric("n_failed", "blank or failed", NEUTRAL,
           "blank (empty or whitespace) answers and requests that failed for good: each counts as an answer "
           "failing the quality gate (pass rate, effective diversity, utility) and is left out of the "
           "similarity figures (intra, inter, near duplicates, phrases, Vendi)", "int"),
]}

PRIMARY = "effective_diversity"
PRIMARY_ONE_SAMPLE = "effective_distinctness"
# Metrics with a bootstrap CI over prompts in leaderboard.csv (<name>_ci_low, <name>_ci_high).
WITH_CI = ["effective_diversity", "effective_distinctness", "vendi", "distinct_ideas", "utility"]


RELATIVE_MARK = "†"
RELATIVE_NOTE = (f"{RELATIVE_MARK} relative: measured against the other systems in the run, so it changes when a "
                 f"system joins or leaves; every other figure is a system's own (its answers and the pinned "
                 f"calibration alone)")


def labelled(name: str) -> str:
    """A metric's display name, marked when it is relative (RELATIVE_NOTE says what the mark means)."""
    metric = METRICS[name]
    return f"{metric.display} {RELATIVE_MARK}" if metric.relative else metric.display


def primary_key(max_samples: int) -> str:
    return PRIMARY if max_samples >= 2 else PRIMARY_ONE_SAMPLE


LEADERBOARD_METRICS = ["effective_diversity", "effective_distinctness", "vendi", "distinct_ideas", "utility",
                       "pass_rate", "intra_mean", "share_above_0.8", "inter_mean_others", "near_duplicate_rate",
                       "mean_distinct_neighbors", "distinct_2_per_prompt", "compression_per_prompt",
                       "distinct_2", "compression_ratio", "n_prompts", "n_responses", "n_failed"]


def leaderboard_columns(primary: str) -> list[str]:
    """leaderboard.csv: the primary key first (with its CI), then the rest; kind = system | control."""
    rest = [m for m in LEADERBOARD_METRICS if m != primary]
    cis = [f"{m}_{side}" for m in WITH_CI if m != primary for side in ("ci_low", "ci_high")]
    return [primary, f"{primary}_ci_low", f"{primary}_ci_high", "rank", "system", "kind", "model", "setting",
            *rest, *cis]


@dataclass(frozen=True)
class Table:
    file: str
    columns: tuple[str, ...]        # required columns (square matrices: their system columns vary)
    description: str


TABLES = {t.file: t for t in [
    Table("intra_model_per_prompt.csv", ("system", "prompt_id", "n_samples", "intra"),
          "mean pairwise cosine per (system, prompt)"),
    Table("intra_model_buckets.csv", ("system", "above_0.7", "above_0.8", "above_0.8_ci_low", "above_0.8_ci_high",
                                      "above_0.8_calibrated",
                                      "mean", "mean_ci_low", "mean_ci_high", "mean_rescaled", "n_prompts"),
          "Fig. 4 buckets per system"),
    Table("inter_model_similarity.csv", ("system",), "Fig. 6 matrix"),
    Table("inter_model_similarity_ci_low.csv", ("system",), "bootstrap CI low"),
    Table("inter_model_similarity_ci_high.csv", ("system",), "bootstrap CI high"),
    Table("inter_model_similarity_rescaled.csv", ("system",), "(x - floor) / (1 - floor)"),
    Table("prompt_homogeneity.csv", ("prompt_id", "prompt", "mean_similarity", "n_responses", "n_systems"),
          "mean cross-system cosine per prompt"),
    Table("near_duplicates.csv", ("prompt_id", "system_a", "system_b", "similarity", "exact", "cluster",
                                  "short", "text_a", "text_b"),
          "cross-system pairs at cosine >= threshold; short = an answer below the minimum length"),
    Table("near_duplicate_clusters.csv", ("prompt_id", "cluster", "size", "n_systems", "systems"), "clusters"),
    Table("neighbor_diversity.csv", ("system", "n_neighbors", "mean_distinct_systems"), "Fig. 8 per system"),
    Table("neighbor_diversity_by_n.csv", ("prompt_id", "n", "n_used", "mean_distinct_systems"),
          "Fig. 8 as published: per prompt, distinct systems among the N nearest, N = 5..50"),
    Table("cross_prompt_templates.csv", ("prompt_a", "prompt_b", "system_a", "system_b", "similarity",
                                         "text_a", "text_b"), "templates reused across prompts"),
    Table("shared_phrases.csv", ("prompt_id", "phrase", "n_words", "n_systems", "systems", "in_prompt"),
          "word sequences several systems used for the same prompt; in_prompt = mostly the prompt's own words"),
    Table("lexical_diversity.csv", ("system", "distinct_1", "distinct_2", "distinct_3", "compression_ratio",
                                    "mean_words", "distinct_2_per_prompt", "compression_per_prompt"),
          "lexical diversity, pooled and per prompt"),
    Table("diversity_per_prompt.csv", ("system", "kind", "prompt_id", "n_samples", "n_failed", "vendi",
                                       "distinct_ideas", "effective_diversity", "effective_distinctness", "utility",
                                       "pass_rate", "distinct_2_per_prompt", "compression_per_prompt"),
          "every diversity metric per (system, prompt); n_samples counts blank answers and failed requests, "
          "n_failed says how many"),
    Table("partitions.csv", ("system", "kind", "prompt_id", "sample", "class"),
          "each answer's class of 'same idea' within its (system, prompt) set, numbered from 0 in NoveltyBench's "
          "order by the run's equivalence method; blank answers and failed requests get classes of their own after "
          "the real ones (hivemind export noveltybench writes these as partitions.jsonl)"),
    Table("pooled_diversity.csv", ("prompt_id", "n_answers", "n_failed", "pooled_vendi", "pooled_distinct_ideas",
                                   "pooled_effective_diversity"),
          "the hivemind view: all real systems pooled; n_answers counts blank answers and failed requests"),
    Table("setting_headlines.csv", ("setting", "n_systems", "share_above_0.8", "inter_min", "inter_max"),
          "paper headline figures per decoding setting"),
    Table("cross_setting_pairs.csv", ("model", "system_a", "setting_a", "system_b", "setting_b", "similarity"),
          "one model under two decoding settings: shown apart from the same-setting inter-model range"),
    Table("leaderboard.csv", ("rank", "system", "kind", "model", "setting", *LEADERBOARD_METRICS),
          "one row per system and control, ranked by the primary key (first column)"),
]}


# Tables analyze writes only when the run has the data for them.
OPTIONAL_TABLES = {t.file: t for t in [
    Table("category_breakdown.csv", ("category", "level", "system", "n_prompts", "mean_intra", "share_above_0.8",
                                     "mean_prompt_similarity", "effective_diversity", "effective_distinctness",
                                     "pooled_vendi", "pooled_distinct_ideas", "few_prompts"),
          "headline metrics per prompt category (prompts with categories only); few_prompts flags small ones"),
    Table("gate_by_scorer.csv", ("system", "gate", "pass_at", "n_scored", "pass_rate", "metric", "value",
                                 "pass_rate_spread", "value_spread"),
          "per system, pass rate and primary key under the run's quality gate (gate = all) and under each "
          "gating scorer alone (relevance kept); spreads = max - min over the single-scorer gates (runs where "
          "two or more scorers gate)"),
]}


def setting_of(params: dict) -> str:
    """The decoding setting of a system: min-p when min_p is set, else top-p (the paper's two)."""
    return "min-p" if params and params.get("min_p") is not None else "top-p"


def rank_with_ties(values, direction: str, digits: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(rank, tied) with rank 1 the most diverse; values equal at `digits` decimals share the lowest rank;
    NaN ranks last (rank NaN)."""
    series = pd.Series(np.asarray(values, dtype=np.float64)).round(digits)
    ascending = direction == HOMOGENEOUS
    ranks = series.rank(method="min", ascending=ascending, na_option="keep")
    tied = series.duplicated(keep=False) & series.notna()
    return ranks.to_numpy(), tied.to_numpy()


def rank_label(rank, tied) -> str:
    if rank is None or pd.isna(rank):
        return "—"
    return f"{int(rank)}=" if tied else str(int(rank))


def sort_by_primary(frame: pd.DataFrame, primary: str) -> pd.DataFrame:
    """Most diverse first, by the primary key's direction; NaN last; stable."""
    ascending = METRICS[primary].direction == HOMOGENEOUS
    return frame.sort_values(primary, ascending=ascending, na_position="last", kind="mergesort")


# results.json: the run's headline numbers, machine-readable ------------------------------------------------
# Written by analyze (from the tables above, the store and analysis.json) and updated by report with the
# report's path. The leaderboard and the notebook read it; the terminal summary prints it. Bump
# RESULTS_SCHEMA_VERSION when a field changes meaning or goes away (adding an optional field does not).

from pydantic import BaseModel, ConfigDict, Field  # noqa: E402  (kept with the block it serves)

RESULTS_JSON = RESULTS    # declared with the rest of the results folder's layout
RESULTS_SCHEMA_VERSION = 1


class Estimate(BaseModel):
    """A figure and its 95% bootstrap confidence interval over prompts (bounds null where not computed)."""
    model_config = ConfigDict(extra="forbid")

    value: float | None = Field(description="the point estimate; null where undefined (e.g. no pairs)")
    ci_low: float | None = Field(default=None, description="lower bound of the 95% bootstrap CI over prompts")
    ci_high: float | None = Field(default=None, description="upper bound of the 95% bootstrap CI over prompts")


class SystemResult(BaseModel):
    """One system (or synthetic control) of the run: its rank, headline figures and what it cost."""
    model_config = ConfigDict(extra="forbid")

    system: str = Field(description="the system's name in the config")
    kind: str = Field(description="'system', or 'control' for a synthetic control (never ranked)")
    model: str = Field(description="the model id the system called")
    setting: str = Field(description="decoding setting: 'top-p', 'min-p', or 'control'")
    rank: str = Field(description="rank by the primary key, 1 = most diverse; '2=' marks a tie; '' for controls")
    primary: Estimate = Field(description="the primary ranking key (see primary_key) with its CI")
    intra_mean: Estimate = Field(description="mean pairwise cosine of a system's answers per prompt, averaged "
                                             "over prompts (Jiang et al. 2025 Fig. 4); higher = more homogeneous")
    share_above_08: Estimate = Field(description="share of prompts whose intra mean exceeds the paper's raw line "
                                                 "0.8 (leaderboard column share_above_0.8)")
    share_above_08_calibrated: float | None = Field(
        description="the same share at the calibrated line (same rescaled value under this run's embedder)")
    inter_mean_others: Estimate = Field(description="mean cosine to the other systems' answers to the same "
                                                    "prompts (Fig. 6 row mean, diagonal left out); no CI")
    near_duplicate_rate: float | None = Field(description="share of answers with a near duplicate from another "
                                                          "system (cosine >= the run's threshold)")
    pass_rate: float | None = Field(description="share of answers passing the quality gate, over every stored "
                                                "answer: blank answers and permanent errors count as failing")
    answers: int | None = Field(description="stored answers with text (blank ones included); null for controls")
    errors: int | None = Field(description="samples stored as permanent errors (no answer)")
    blank: int | None = Field(default=None, description="answers whose text is empty or whitespace only (among "
                                                       "`answers`); null for controls and runs analysed before it")
    failed: int | None = Field(default=None, description=(
        "blank answers plus permanent errors as the analysis counted them (leaderboard column n_failed): each is "
        "an answer failing the quality gate, in the pass rate, effective diversity and utility, and is left out "
        "of the similarity figures; null for runs analysed before it"))
    truncated: int | None = Field(description="answers cut at the token limit (finish_reason 'length')")
    truncated_share: float | None = Field(description="truncated / answers")
    error_share: float | None = Field(description="errors / (answers + errors)")
    cost_usd: float | None = Field(description="USD the answers cost, as priced by litellm (0 for local models)")
    metrics: dict[str, int | float | str | None] = Field(
        description="every column of this system's leaderboard.csv row, as written (numbers and labels)")


class RunResults(BaseModel):
    """results.json: the headline of one analysed run. Every number equals the CSV tables it came from."""
    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(description="version of this schema; bumped when a field changes meaning")
    hivemind_version: str = Field(description="the hivemind version that wrote the file")
    created_at: str = Field(description="when analyze wrote it (UTC, ISO 8601)")
    run: str = Field(description="the run's name (its folder under the results folder)")
    embedder: str = Field(description="the embedder id every cosine came from")
    primary_key: str = Field(description="name of the primary ranking key, a metric of hivemind.results.contract.METRICS")
    primary_display: str = Field(description="its display name")
    primary_direction: str = Field(description="'more diverse': a higher value ranks higher")
    ranking: str = Field(description="how ranks are assigned")
    n_prompts: int = Field(description="prompts analysed")
    n_responses: int = Field(description="non-blank answers analysed")
    headline: dict[str, float | None] = Field(description="run-level figures (analysis.json `headline`): mean "
                                                          "share above 0.8, intra mean, inter min/max, ...")
    report: str | None = Field(default=None, description="report.html relative to the run folder; null until "
                                                          "`hivemind report` ran")
    calibration: dict | None = Field(default=None, description=(
        "the pinned calibration the own figures were measured against (hivemind.results.calibration): floor, "
        "relevance line, idea line, the reference systems and the key (embedder, equivalence, prompt set); null "
        "for runs analysed before calibrations were pinned"))
    relative_metrics: list[str] = Field(default_factory=list, description=(
        "metrics relative by nature (measured against the other systems in the run: they move when one joins); "
        "every other figure is the system's own"))
    systems: list[SystemResult] = Field(description="one entry per leaderboard.csv row, most diverse first")
    gated_by: list[str] | None = Field(default=None, description=(
        "what gated the answers (analysis.json quality_gate.gated_by): 'relevance' when the relevance line was "
        "calibrated, then each scorer with a pass_at that scored an answer; null for runs analysed before it"))
