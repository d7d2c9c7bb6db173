"""The tables and analysis.json, built from what the passes measured (hivemind.analyze.passes).

Everything here is in memory: hivemind.analyze.stage writes the tables through the results folder's one
write path. Warnings say where a figure is undefined (single samples, one prompt, pairs without a common
prompt) or where answers were left out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hivemind import __version__
from hivemind.analyze.diversity import DiversityStats
from hivemind.analyze.neighbors import FIG8_NS, NeighborResults
from hivemind.analyze.passes import N_NEIGHBORS, TEMPLATE_SAMPLES, Measured
from hivemind.analyze.phrases import in_prompt, words
from hivemind.analyze.similarity import BUCKET_LABELS, SimilarityStats
from hivemind.core.config import RunConfig
from hivemind.core.stats import nanmean as _nanmean
from hivemind.results import contract as results
from hivemind.store import Store, now

BOOTSTRAP_N = 1000
BOOTSTRAP_LEVEL = 0.95
MIN_ANSWER_WORDS = 5          # near-duplicate pairs with a shorter answer are short-answer agreement
INTRA_LINE = 0.8        # the paper's line for "near-identical answers"


# Building the tables -------------------------------------------------------------------------------------
def intra_warnings(valid: np.ndarray, names: list[str]) -> list[str]:
    """Where intra-model similarity is undefined (fewer than 2 samples of a system on a prompt), when some
    systems have it: the systems without it at all, and those without it on some prompts. `valid`: prompts x
    systems. (Every system without it is the `samples: 1` warning.)"""
    if not valid.any():
        return []
    lines = []
    none = [n for n, ok in zip(names, valid.any(axis=0)) if not ok]
    if none:
        lines.append(f"system(s) {', '.join(none)} have fewer than 2 samples on every prompt: their intra-model "
                     f"similarity is undefined (empty cells); the other systems' figures use the samples present")
    some = [f"{n} ({int((~col).sum())} of {len(col)})" for n, col in zip(names, valid.T) if col.any() and not col.all()]
    if some:
        lines.append(f"fewer than 2 samples on some prompts, where intra-model similarity is undefined (empty "
                     f"cells): {', '.join(some)}")
    return lines


def build_tables(store: Store, config: RunConfig, ids: list[str], names: list[str], m: Measured,
                 prompts: dict[str, str]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The tables every run has (results.TABLES), in the order they are written, and the run's warnings."""
    sim = m.similarity
    warnings = similarity_warnings(config, sim, names)
    summary = sim.intra_summary()
    inter = sim.inter_matrix()
    if np.isnan(inter).any():
        warnings.append("some pairs of systems never answered a common prompt: their inter-model cells are empty")
    t = similarity_tables(config, sim, summary, inter, names, prompts)
    tables, notes = neighbor_tables(store, m, ids, names, prompts)
    t.update(tables)
    warnings += notes + diversity_warnings(m, names)
    all_names = names + [c.name for c in m.controls]
    kinds = ["system"] * len(names) + ["control"] * len(m.controls)
    t.update(diversity_tables(m, names, all_names, kinds))
    settings = [results.setting_of(s.params) for s in config.systems]
    t["setting_headlines.csv"], t["cross_setting_pairs.csv"] = setting_tables(config, summary, inter, settings)
    t["leaderboard.csv"] = leaderboard_frame(config, m, summary, inter, settings, all_names, kinds)
    return t, warnings


def similarity_warnings(config: RunConfig, sim: SimilarityStats, names: list[str]) -> list[str]:
    """Where the similarity figures are undefined: single samples (intra), one prompt or no spread between
    prompts (the floor and the rescaled values)."""
    warnings = []
    if not sim.valid.any():
        from hivemind.results.record import is_imported

        more = "import >= 2 samples per prompt" if is_imported(config) else "collect >= 2 samples"
        warnings.append("every system has a single sample per prompt (`samples: 1`): intra-model similarity is "
                        f"undefined, so the intra tables and columns are empty; {more} to measure it")
    warnings += intra_warnings(sim.valid, names)
    if sim.floor is None:
        warnings.append("only one prompt: the cross-prompt floor and rescaled values are undefined (left empty)")
    elif not sim.can_rescale:
        warnings.append(f"answers to different prompts are as alike as identical answers (floor {sim.floor:.6f}): "
                        "the rescaled values are undefined (left empty)")
    return warnings


def similarity_tables(config: RunConfig, sim: SimilarityStats, summary, inter: np.ndarray, names: list[str],
                      prompts: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Intra-model (per prompt, buckets), inter-model (raw, intervals, rescaled) and per-prompt homogeneity."""
    ci = sim.bootstrap(n=BOOTSTRAP_N, seed=config.seed, level=BOOTSTRAP_LEVEL)
    t: dict[str, pd.DataFrame] = {}
    t["intra_model_per_prompt.csv"] = intra_per_prompt(sim, names)
    buckets = pd.DataFrame(summary.buckets, index=pd.Index(names, name="system"), columns=BUCKET_LABELS)
    buckets["above_0.7"] = summary.above_07
    buckets["above_0.8"] = summary.above_08
    buckets["above_0.8_ci_low"] = ci.above_08_low
    buckets["above_0.8_ci_high"] = ci.above_08_high
    # The raw 0.8 line means different things under different embedders: the calibrated share uses the line
    # with the same rescaled value, floor + 0.8 (1 - floor), for this run's embedder (docs/embedders.md).
    buckets["above_0.8_calibrated"] = share_above(sim, calibrated_line(INTRA_LINE, sim.floor))
    buckets["mean"] = summary.mean
    buckets["mean_ci_low"] = ci.mean_low
    buckets["mean_ci_high"] = ci.mean_high
    buckets["mean_rescaled"] = sim.rescale(summary.mean)
    buckets["n_prompts"] = summary.n_prompts
    t["intra_model_buckets.csv"] = buckets
    square = lambda values: pd.DataFrame(values, index=pd.Index(names, name="system"), columns=names)
    t["inter_model_similarity.csv"] = square(inter)
    t["inter_model_similarity_ci_low.csv"] = square(ci.inter_low)
    t["inter_model_similarity_ci_high.csv"] = square(ci.inter_high)
    t["inter_model_similarity_rescaled.csv"] = square(sim.rescale(inter))
    t["prompt_homogeneity.csv"] = pd.DataFrame({
        "prompt_id": sim.prompt_ids, "prompt": [prompts.get(p, "") for p in sim.prompt_ids],
        "mean_similarity": sim.prompt_homogeneity(), "n_responses": sim.counts.sum(axis=1),
        "n_systems": (sim.counts > 0).sum(axis=1)})
    return t


def neighbor_tables(store: Store, m: Measured, ids: list[str], names: list[str], prompts: dict[str, str]
                    ) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Near duplicates and their clusters, neighbour diversity (Fig. 8), cross-prompt templates and shared
    phrases; with the warnings on what they cap."""
    near = m.neighbors
    t: dict[str, pd.DataFrame] = {}
    warnings = []
    t["near_duplicates.csv"] = near_duplicate_table(near, names)
    t["near_duplicate_clusters.csv"] = pd.DataFrame(
        [(near.prompt_ids[c.prompt], c.cluster, c.size, len(c.systems), ";".join(names[s] for s in c.systems))
         for c in near.clusters], columns=["prompt_id", "cluster", "size", "n_systems", "systems"])
    t["neighbor_diversity.csv"] = pd.DataFrame({
        "system": names, "n_neighbors": near.mean_n_neighbors, "mean_distinct_systems": near.mean_distinct_neighbors})
    t["neighbor_diversity_by_n.csv"] = pd.DataFrame(
        near.by_n, columns=["prompt_id", "n", "n_used", "mean_distinct_systems"])
    if near.n_capped:
        warnings.append(f"Fig. 8: {near.n_capped} prompt(s) have fewer than {max(FIG8_NS) + 1} answers, so N is "
                        f"capped at their number of other answers (n_used < n in neighbor_diversity_by_n.csv)")
    t["cross_prompt_templates.csv"] = template_table(store, near, ids, names)
    t["shared_phrases.csv"] = pd.DataFrame(
        [(pid, ph.phrase, ph.n_words, ph.n_systems, ";".join(names[s] for s in ph.systems),
          in_prompt(ph.phrase, prompts.get(pid, ""))) for pid, ph in m.phrases],
        columns=["prompt_id", "phrase", "n_words", "n_systems", "systems", "in_prompt"])
    if m.n_phrases_found > len(m.phrases):
        warnings.append(f"shared_phrases.csv keeps the {len(m.phrases)} most shared of {m.n_phrases_found} phrases")
    return t, warnings


def diversity_warnings(m: Measured, names: list[str]) -> list[str]:
    """A gate without a relevance line; blank answers and failed requests, counted as failing the gate."""
    warnings = []
    if m.equivalence_note:
        warnings.append(m.equivalence_note)
    if m.gate.relevance_line is None:
        warnings.append(f"the quality gate has no relevance line ({m.gate.no_line_reason or 'not calibrated'}); "
                        f"answers are gated by the configured scorers only")
    n_failed = int(m.diversity.failed[:, :len(names)].sum())
    if n_failed:
        warnings.append(f"{n_failed} blank answer(s) or failed request(s) (n_failed in leaderboard.csv) count as "
                        f"answers failing the quality gate (pass rate, effective diversity, utility) and are left "
                        f"out of the similarity figures (intra, inter, near duplicates, phrases, Vendi)")
    return warnings


def diversity_tables(m: Measured, names: list[str], all_names: list[str], kinds: list[str]
                     ) -> dict[str, pd.DataFrame]:
    """Lexical diversity (real systems), the quality-gated metrics per prompt (systems and controls) and the
    pooled view per prompt."""
    lex, div = m.lexical, m.diversity
    means = div.system_means()
    k = len(names)
    t: dict[str, pd.DataFrame] = {}
    t["lexical_diversity.csv"] = pd.DataFrame({
        "system": names, "distinct_1": lex.distinct_1, "distinct_2": lex.distinct_2, "distinct_3": lex.distinct_3,
        "compression_ratio": lex.compression_ratio, "mean_words": lex.mean_words,
        "distinct_2_per_prompt": means["distinct_2_per_prompt"][:k],
        "compression_per_prompt": means["compression_per_prompt"][:k]})
    t["diversity_per_prompt.csv"] = diversity_per_prompt(div, all_names, kinds)
    t["partitions.csv"] = partitions_table(div, all_names, kinds)
    t["pooled_diversity.csv"] = pd.DataFrame({
        "prompt_id": div.prompt_ids, "n_answers": div.pooled["pooled_n"].astype(np.int64),
        "n_failed": div.pooled["pooled_failed"].astype(np.int64),
        "pooled_vendi": div.pooled["pooled_vendi"], "pooled_distinct_ideas": div.pooled["pooled_distinct_ideas"],
        "pooled_effective_diversity": div.pooled["pooled_effective_diversity"]})
    return t


def optional_tables(store: Store, config: RunConfig, t: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """results.OPTIONAL_TABLES this run has the data for: the per-category breakdown when prompts carry
    categories (prompt file, dataset or `hivemind classify`)."""
    from hivemind.analyze.categories import TABLE, breakdown, run_categories

    out = {}
    categories = run_categories(store)
    if any(categories.values()):
        diversity = t["diversity_per_prompt.csv"]
        out[TABLE] = breakdown(t["intra_model_per_prompt.csv"], categories, t["prompt_homogeneity.csv"],
                               diversity=diversity[diversity["kind"] == "system"],
                               pooled=t["pooled_diversity.csv"])
    return out


def leaderboard_frame(config: RunConfig, m: Measured, summary, inter: np.ndarray, settings: list[str],
                      all_names: list[str], kinds: list[str]) -> pd.DataFrame:
    """One row per system and control, in the results contract's column order, ranked by the primary key.

    Controls get the diversity metrics only (their similarity to real systems would otherwise change the
    real systems' figures) and no rank."""
    near, lex, div = m.neighbors, m.lexical, m.diversity
    k, total = len(config.systems), len(all_names)
    pad = lambda values: np.concatenate([np.asarray(values, dtype=np.float64), np.full(total - k, np.nan)])
    off = ~np.eye(k, dtype=bool)
    with np.errstate(invalid="ignore"):
        others = [np.nanmean(inter[i, off[i]]) if np.any(~np.isnan(inter[i, off[i]])) else np.nan for i in range(k)]
    means = div.system_means()
    columns = {
        "intra_mean": pad(summary.mean), "share_above_0.8": pad(summary.above_08), "inter_mean_others": pad(others),
        "near_duplicate_rate": pad(near.near_duplicate_rate), "mean_distinct_neighbors": pad(near.mean_distinct_neighbors),
        "distinct_2": pad(lex.distinct_2), "compression_ratio": pad(lex.compression_ratio),
        "n_prompts": (div.counts > 0).sum(axis=0), "n_responses": (div.counts - div.failed).sum(axis=0),
        "n_failed": div.failed.sum(axis=0),
        **{name: means[name] for name in ("effective_diversity", "effective_distinctness", "vendi", "distinct_ideas",
                                          "utility", "pass_rate", "distinct_2_per_prompt", "compression_per_prompt")},
    }
    for name in results.WITH_CI:
        low, high = div.bootstrap(name, n=BOOTSTRAP_N, seed=config.seed, level=BOOTSTRAP_LEVEL)
        columns[f"{name}_ci_low"], columns[f"{name}_ci_high"] = low, high
    frame = pd.DataFrame({"system": all_names, "kind": kinds,
                          "model": [s.model for s in config.systems] + [c.model for c in m.controls],
                          "setting": settings + ["control"] * len(m.controls), **columns})
    primary = results.primary_key(m.max_samples)
    real = frame["kind"] == "system"
    ranks, tied = results.rank_with_ties(frame.loc[real, primary], results.METRICS[primary].direction)
    frame["rank"] = ""
    frame.loc[real, "rank"] = [results.rank_label(r, t) for r, t in zip(ranks, tied)]
    frame = results.sort_by_primary(frame, primary)
    return frame[results.leaderboard_columns(primary)].reset_index(drop=True)


def diversity_per_prompt(div: DiversityStats, names: list[str], kinds: list[str]) -> pd.DataFrame:
    p_idx, k_idx = np.nonzero(div.counts > 0)
    order = np.lexsort((p_idx, k_idx))          # system-major, prompts in store order
    p_idx, k_idx = p_idx[order], k_idx[order]
    frame = pd.DataFrame({"system": [names[k] for k in k_idx], "kind": [kinds[k] for k in k_idx],
                          "prompt_id": [div.prompt_ids[p] for p in p_idx], "n_samples": div.counts[p_idx, k_idx],
                          "n_failed": div.failed[p_idx, k_idx]})
    for name in ("vendi", "distinct_ideas", "effective_diversity", "effective_distinctness", "utility", "pass_rate",
                 "distinct_2_per_prompt", "compression_per_prompt"):
        frame[name] = div.cells[name][p_idx, k_idx]
    return frame


def setting_tables(config: RunConfig, summary, inter: np.ndarray, settings: list[str]
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's headline figures per decoding setting (its 79% and buckets are top-p only, its 61.2%
    min-p), the inter-model range among systems of the same setting, and same-model cross-setting pairs."""
    rows = []
    for setting in dict.fromkeys(settings):
        idx = [i for i, s in enumerate(settings) if s == setting]
        sub = inter[np.ix_(idx, idx)]
        off = sub[~np.eye(len(idx), dtype=bool)]
        off = off[~np.isnan(off)]
        buckets = np.nanmean(summary.buckets[idx], axis=0) if np.any(summary.n_prompts[idx] > 0) else \
            np.full(len(BUCKET_LABELS), np.nan)
        rows.append({"setting": setting, "n_systems": len(idx),
                     "share_above_0.8": _nanmean(summary.above_08[idx]), "intra_mean": _nanmean(summary.mean[idx]),
                     "inter_min": float(off.min()) if len(off) else np.nan,
                     "inter_max": float(off.max()) if len(off) else np.nan,
                     "inter_mean": float(off.mean()) if len(off) else np.nan,
                     **dict(zip(BUCKET_LABELS, buckets)), "below_0.6": float(np.sum(buckets[:6]))})
    pairs = []
    systems = config.systems
    for i in range(len(systems)):
        for j in range(i + 1, len(systems)):
            if systems[i].model == systems[j].model and settings[i] != settings[j]:
                pairs.append({"model": systems[i].model, "system_a": systems[i].name, "setting_a": settings[i],
                              "system_b": systems[j].name, "setting_b": settings[j], "similarity": inter[i, j]})
    return pd.DataFrame(rows), pd.DataFrame(
        pairs, columns=["model", "system_a", "setting_a", "system_b", "setting_b", "similarity"])


def intra_per_prompt(sim: SimilarityStats, names: list[str]) -> pd.DataFrame:
    k_idx, p_idx = np.nonzero(sim.valid.T)      # system-major, prompts in store order
    return pd.DataFrame({
        "system": [names[k] for k in k_idx], "prompt_id": [sim.prompt_ids[p] for p in p_idx],
        "n_samples": sim.counts[p_idx, k_idx], "intra": sim.intra[p_idx, k_idx]})


def near_duplicate_table(near: NeighborResults, names: list[str]) -> pd.DataFrame:
    d = near.near_duplicates
    order = np.lexsort((-d.similarity, d.prompt))
    short = [bool(d.text_a) and min(len(words(d.text_a[i])), len(words(d.text_b[i]))) < MIN_ANSWER_WORDS
             for i in order]
    return pd.DataFrame({
        "prompt_id": [near.prompt_ids[p] for p in d.prompt[order]],
        "system_a": [names[s] for s in d.system_a[order]], "system_b": [names[s] for s in d.system_b[order]],
        "similarity": d.similarity[order].astype(np.float64), "exact": d.exact[order],
        "cluster": d.cluster[order], "short": np.array(short, dtype=bool),
        "text_a": [d.text_a[i] for i in order] if d.text_a else [""] * len(order),
        "text_b": [d.text_b[i] for i in order] if d.text_b else [""] * len(order)},
        columns=["prompt_id", "system_a", "system_b", "similarity", "exact", "cluster", "short", "text_a", "text_b"])


def template_table(store: Store, near: NeighborResults, ids: list[str], names: list[str]) -> pd.DataFrame:
    tp = near.templates
    texts = store.texts_for_keys(
        [(ids[s], near.prompt_ids[p], int(x)) for p, s, x in zip([*tp.prompt_a, *tp.prompt_b],
                                                                 [*tp.system_a, *tp.system_b],
                                                                 [*tp.sample_a, *tp.sample_b])])

    def text(p, s, sample):
        return texts.get((ids[s], near.prompt_ids[p], int(sample)), "")

    rows = [(near.prompt_ids[pa], near.prompt_ids[pb], names[sa], names[sb], float(sim),
             text(pa, sa, xa), text(pb, sb, xb))
            for pa, pb, sa, sb, xa, xb, sim in zip(tp.prompt_a, tp.prompt_b, tp.system_a, tp.system_b,
                                                   tp.sample_a, tp.sample_b, tp.similarity)]
    return pd.DataFrame(rows, columns=["prompt_a", "prompt_b", "system_a", "system_b", "similarity",
                                       "text_a", "text_b"])


def analysis_info(config: RunConfig, names: list[str], m: Measured, n_empty: int, warnings: list[str],
                  store: Store) -> dict:
    from hivemind.results.fingerprint import prompt_set_hash

    sim, near, div = m.similarity, m.neighbors, m.diversity
    primary = results.primary_key(m.max_samples)
    real = [i for i in range(len(names))]
    means = div.system_means()
    return {
        "format_version": results.FORMAT_VERSION, "hivemind_version": __version__, "embedder": config.embedder.id,
        "floor": sim.floor, "threshold": config.near_duplicate_threshold, "n_prompts": len(sim.prompt_ids),
        "n_responses": int(sim.counts.sum()), "systems": names,
        "controls": [c.name for c in m.controls], "engine": m.engine,
        "primary_key": primary, "primary_direction": results.METRICS[primary].direction,
        "ranking": "rank 1 = most diverse by the primary key; equal values share a rank (shown '2=')",
        "headline": headline_numbers(sim, div, primary, real),
        "quality_gate": {"description": m.gate.describe(), "relevance_line": m.gate.relevance_line,
                         "scorers": m.gate.scorers, "scored": m.gate.n_scored, "gated_by": m.gate.gated_by()},
        "distinct_ideas_threshold": None if np.isnan(div.threshold) else div.threshold,
        "equivalence": {"method": config.equivalence.method, "id": div.equivalence,
                        "note": m.equivalence_note},
        # The pinned lines every own figure is measured against (hivemind.analyze.reference); floor above is its
        # floor, floor_systems_present the floor of this run's systems (relative: it moves with them).
        "calibration": None if m.calibration is None else m.calibration.to_dict(),
        "floor_systems_present": m.floor_present if m.calibration is not None else sim.floor,
        "relative_metrics": [name for name, metric in results.METRICS.items() if metric.relative],
        "thresholds": {
            "embedder": config.embedder.id,
            "intra_line": INTRA_LINE, "intra_line_calibrated": calibrated_line(INTRA_LINE, sim.floor),
            "near_duplicate": config.near_duplicate_threshold,
            "near_duplicate_calibrated": calibrated_line(config.near_duplicate_threshold, sim.floor),
            "note": "raw lines are the paper's (text-embedding-3-small); a calibrated line has the same rescaled "
                    "value (x - floor) / (1 - floor) under this run's embedder and floor"},
        "near_duplicate_min_words": MIN_ANSWER_WORDS,
        "figure_similarity_scale": list(results.SIMILARITY_SCALE),
        "fig8_ns": list(FIG8_NS),
        "bootstrap": {"n": BOOTSTRAP_N, "seed": config.seed, "level": BOOTSTRAP_LEVEL},
        "created_at": now(),
        "prompt_set_hash": prompt_set_hash(store.prompts()), "n_empty_skipped": n_empty, "n_neighbors": N_NEIGHBORS,
        "template_index": f"{near.template_index}; first {TEMPLATE_SAMPLES} sample(s) per system per prompt",
        "warnings": warnings,
        "pass_rate": dict(zip(names, [None if np.isnan(v) else float(v) for v in means["pass_rate"][:len(names)]])),
        "n_failed": dict(zip(names, [int(v) for v in div.failed.sum(axis=0)[:len(names)]])),
    }


def partitions_table(div, names: list[str], kinds: list[str]) -> pd.DataFrame:
    """partitions.csv: one row per answer, its class within its (system, prompt) set."""
    rows = [(names[s], kinds[s], prompt_id, sample, cls) for prompt_id, s, sample, cls in div.labels]
    return pd.DataFrame(rows, columns=["system", "kind", "prompt_id", "sample", "class"])


def calibrated_line(line: float, floor: float | None) -> float:
    """The cosine with the same rescaled value as `line`: (x - f) / (1 - f) = line  <=>  x = f + line (1 - f)."""
    return float("nan") if floor is None else floor + line * (1.0 - floor)


def share_above(sim: SimilarityStats, line: float) -> np.ndarray:
    """Per system, the share of its prompts (with >= 2 samples) whose intra similarity exceeds `line`."""
    valid = sim.valid
    n = valid.sum(axis=0)
    above = (np.where(valid, sim.intra, -np.inf) > line).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n > 0) & ~np.isnan(line), above / np.maximum(n, 1), np.nan)


def headline_numbers(sim: SimilarityStats, div: DiversityStats, primary: str, real: list[int]) -> dict:
    """The figures a reader quotes, as plain numbers (None where undefined)."""
    summary = sim.intra_summary()
    inter = sim.inter_matrix()
    off = inter[~np.eye(len(inter), dtype=bool)]
    means = div.system_means()
    clean = lambda v: None if v is None or np.isnan(v) else float(v)
    return {
        "share_above_0.8": clean(_nanmean(summary.above_08)), "intra_mean": clean(_nanmean(summary.mean)),
        "inter_min": clean(np.nanmin(off)) if np.any(~np.isnan(off)) else None,
        "inter_max": clean(np.nanmax(off)) if np.any(~np.isnan(off)) else None,
        f"{primary}_mean": clean(_nanmean(means[primary][real])),
        "pooled_vendi_mean": clean(_nanmean(div.pooled["pooled_vendi"])),
        "pooled_distinct_ideas_mean": clean(_nanmean(div.pooled["pooled_distinct_ideas"])),
    }
