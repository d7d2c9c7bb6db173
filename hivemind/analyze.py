"""The measurement stage: one streaming pass over the stored, embedded responses -> the tables.

Inputs are checked first (nothing is written when they are unusable); then every table is computed in
memory from per-prompt accumulators and written to a temporary folder inside the run folder, and only
then renamed into place, so a failed analysis leaves the previous tables as they were. Only a kill during
the final renames (milliseconds) could mix old and new tables; analysis.json is renamed last.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from hivemind import HivemindError, __version__
from hivemind.config import RunConfig
from hivemind.neighbors import NearDuplicateFinder, NeighborResults
from hivemind.phrases import LexicalAccumulator, LexicalStats, shared_phrases
from hivemind.similarity import BUCKET_LABELS, SimilarityAccumulator, SimilarityStats
from hivemind.store import BLANKS, PromptGroup, Store, check_folder, file_error, now
from hivemind.secrets import scan_paths

BOOTSTRAP_N = 1000
BOOTSTRAP_LEVEL = 0.95
N_NEIGHBORS = 50
TEMPLATE_SAMPLES = 1          # per system per prompt, indexed for cross-prompt templates
MAX_TEMPLATES = 1000
PHRASES_PER_PROMPT = 20
MAX_PHRASES = 10_000

TABLES = [
    "intra_model_per_prompt.csv", "intra_model_buckets.csv", "inter_model_similarity.csv",
    "inter_model_similarity_ci_low.csv", "inter_model_similarity_ci_high.csv",
    "inter_model_similarity_rescaled.csv", "prompt_homogeneity.csv", "near_duplicates.csv",
    "near_duplicate_clusters.csv", "neighbor_diversity.csv", "cross_prompt_templates.csv",
    "shared_phrases.csv", "lexical_diversity.csv", "leaderboard.csv", "analysis.json",
]


@dataclass
class AnalysisSummary:
    run_dir: Path
    files: list[Path]
    systems: list[str]
    n_prompts: int
    n_responses: int
    n_empty_skipped: int
    floor: float | None
    n_near_duplicates: int
    n_clusters: int
    n_templates: int
    n_shared_phrases: int
    warnings: list[str] = field(default_factory=list)


def is_empty(text: str | None) -> bool:
    return text is None or not text.strip(BLANKS)


def analyze_run(config: RunConfig, progress: bool = True) -> AnalysisSummary:
    store = Store.open_readonly(config.store_path)
    try:
        ids = [s.identity for s in config.systems]
        names = [s.name for s in config.systems]
        n_empty = check_inputs(store, config, ids)
        measured = measure(store, config, ids, progress)
        prompts = {p.id: p.text for p in store.prompts()}
        tables, warnings = build_tables(store, config, ids, names, measured, prompts)
        info = analysis_info(config, names, measured, n_empty, warnings, store)
        files = write_atomically(config.run_dir, tables, info)
        scan_paths(files, config, remove=True)  # no key value or key-shaped string is left in a table
    finally:
        store.close()
    sim, near = measured.similarity, measured.neighbors
    return AnalysisSummary(
        run_dir=config.run_dir, files=files, systems=names, n_prompts=len(sim.prompt_ids),
        n_responses=int(sim.counts.sum()), n_empty_skipped=n_empty, floor=sim.floor,
        n_near_duplicates=len(near.near_duplicates.similarity), n_clusters=len(near.clusters),
        n_templates=len(near.templates.similarity), n_shared_phrases=len(tables["shared_phrases.csv"]),
        warnings=warnings,
    )


# Checks -------------------------------------------------------------------------------------------
def check_inputs(store: Store, config: RunConfig, ids: list[str]) -> int:
    """Fail with a message saying what to run, before anything is computed or written.

    Returns how many empty (blank) answers will be skipped."""
    names = {s.identity: s.name for s in config.systems}
    per_system = store.response_counts_per_system(ids)
    total = sum(n for n, _ in per_system.values())
    if total == 0:
        raise HivemindError(f"{config.store_path}: run {config.name!r} has no stored responses for its systems; "
                            f"run `hivemind collect {config.name}` first")
    missing = [names[s] for s, (n, _) in per_system.items() if n == 0]
    if missing:
        raise HivemindError(f"{config.store_path}: no stored responses for system(s) {', '.join(missing)}; "
                            f"run `hivemind collect {config.name}` first (or remove them from the config)")
    all_blank = [names[s] for s, (n, b) in per_system.items() if n == b]
    if all_blank:
        raise HivemindError(f"{config.store_path}: every response of system(s) {', '.join(all_blank)} is empty; "
                            f"check their settings (model, api_base, params) and collect again")
    not_embedded = store.count_not_embedded(config.embedder.id, ids)
    if not_embedded:
        raise HivemindError(f"{config.store_path}: {not_embedded} of {total} responses have no "
                            f"{config.embedder.id} embedding; run `hivemind embed {config.name}` first")
    most = store.max_samples_per_prompt(ids)
    single = [names[s] for s, m in most.items() if m < 2]
    # A run designed with one sample per prompt (`samples: 1`, e.g. imported one-answer-per-model
    # outputs) still has inter-model similarity; its intra tables are left empty, with a warning.
    # With `samples` >= 2, a system without two samples anywhere is a broken collection: an error.
    if single and config.samples >= 2:
        raise HivemindError(f"system(s) {', '.join(single)} have fewer than 2 non-empty samples on every prompt, so "
                            f"intra-model similarity is undefined; set `samples: 2` or more in the config of run "
                            f"{config.name!r} and run `hivemind collect {config.name}` again")
    return int(sum(b for _, b in per_system.values()))


# The pass -----------------------------------------------------------------------------------------
@dataclass
class Measured:
    similarity: SimilarityStats
    neighbors: NeighborResults
    lexical: LexicalStats
    phrases: list[tuple[str, object]]       # (prompt_id, SharedPhrase)
    n_phrases_found: int


def measure(store: Store, config: RunConfig, ids: list[str], progress: bool) -> Measured:
    k = len(ids)
    sim = SimilarityAccumulator(k)
    near = NearDuplicateFinder(k, threshold=config.near_duplicate_threshold, n_neighbors=N_NEIGHBORS,
                               template_samples=TEMPLATE_SAMPLES)
    lex = LexicalAccumulator(k)
    phrases = []
    n_prompts = store.n_prompts_with_text(ids)
    groups = store.iter_prompt_groups(config.embedder.id, ids)
    for group in tqdm(groups, total=n_prompts, desc="analyze", unit="prompt", disable=not progress):
        group = drop_empty(group)
        if group is None:
            continue
        sim.add(group)
        near.add(group)
        for text, system in zip(group.texts, group.systems.tolist()):
            lex.add(text, system)
        phrases += [(group.prompt_id, ph) for ph in shared_phrases(group.texts, group.systems.tolist(),
                                                                   limit=PHRASES_PER_PROMPT)]
    n_found = len(phrases)
    # Keep the most widely shared phrases overall, stable in prompt order among equals.
    phrases = sorted(phrases, key=lambda item: (-item[1].n_systems, -item[1].n_words))[:MAX_PHRASES]
    return Measured(sim.finish(), near.finish(max_templates=MAX_TEMPLATES, seed=config.seed), lex.finish(),
                    phrases, n_found)


def drop_empty(group: PromptGroup) -> PromptGroup | None:
    keep = [i for i, t in enumerate(group.texts) if not is_empty(t)]
    if len(keep) == len(group.texts):
        return group
    if not keep:
        return None
    return PromptGroup(prompt_id=group.prompt_id, systems=group.systems[keep], vectors=group.vectors[keep],
                       texts=[group.texts[i] for i in keep],
                       samples=group.samples[keep] if group.samples is not None else None)


# Tables -------------------------------------------------------------------------------------------
def build_tables(store: Store, config: RunConfig, ids: list[str], names: list[str], m: Measured,
                 prompts: dict[str, str]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    sim, near, lex = m.similarity, m.neighbors, m.lexical
    warnings = []
    if not sim.valid.any():
        warnings.append("every system has a single sample per prompt (`samples: 1`): intra-model similarity is "
                        "undefined, so the intra tables and columns are empty; collect >= 2 samples to measure it")
    if sim.floor is None:
        warnings.append("only one prompt: the cross-prompt floor and rescaled values are undefined (left empty)")
    elif not sim.can_rescale:
        warnings.append(f"answers to different prompts are as alike as identical answers (floor {sim.floor:.6f}): "
                        "the rescaled values are undefined (left empty)")
    summary = sim.intra_summary()
    ci = sim.bootstrap(n=BOOTSTRAP_N, seed=config.seed, level=BOOTSTRAP_LEVEL)
    inter = sim.inter_matrix()
    if np.isnan(inter).any():
        warnings.append("some pairs of systems never answered a common prompt: their inter-model cells are empty")
    t: dict[str, pd.DataFrame] = {}
    t["intra_model_per_prompt.csv"] = intra_per_prompt(sim, names)
    buckets = pd.DataFrame(summary.buckets, index=pd.Index(names, name="system"), columns=BUCKET_LABELS)
    buckets["above_0.7"] = summary.above_07
    buckets["above_0.8"] = summary.above_08
    buckets["above_0.8_ci_low"] = ci.above_08_low
    buckets["above_0.8_ci_high"] = ci.above_08_high
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
    t["near_duplicates.csv"] = near_duplicate_table(near, names)
    t["near_duplicate_clusters.csv"] = pd.DataFrame(
        [(near.prompt_ids[c.prompt], c.cluster, c.size, len(c.systems), ";".join(names[s] for s in c.systems))
         for c in near.clusters], columns=["prompt_id", "cluster", "size", "n_systems", "systems"])
    t["neighbor_diversity.csv"] = pd.DataFrame({
        "system": names, "n_neighbors": near.mean_n_neighbors, "mean_distinct_systems": near.mean_distinct_neighbors})
    t["cross_prompt_templates.csv"] = template_table(store, near, ids, names)
    t["shared_phrases.csv"] = pd.DataFrame(
        [(pid, ph.phrase, ph.n_words, ph.n_systems, ";".join(names[s] for s in ph.systems)) for pid, ph in m.phrases],
        columns=["prompt_id", "phrase", "n_words", "n_systems", "systems"])
    if m.n_phrases_found > len(m.phrases):
        warnings.append(f"shared_phrases.csv keeps the {len(m.phrases)} most shared of {m.n_phrases_found} phrases")
    t["lexical_diversity.csv"] = pd.DataFrame({
        "system": names, "distinct_1": lex.distinct_1, "distinct_2": lex.distinct_2, "distinct_3": lex.distinct_3,
        "compression_ratio": lex.compression_ratio, "mean_words": lex.mean_words})
    off = ~np.eye(len(names), dtype=bool)
    with np.errstate(invalid="ignore"):
        others = [np.nanmean(inter[i, off[i]]) if np.any(~np.isnan(inter[i, off[i]])) else np.nan
                  for i in range(len(names))]
    t["leaderboard.csv"] = pd.DataFrame({
        "system": names, "model": [s.model for s in config.systems], "intra_mean": summary.mean,
        "share_above_0.8": summary.above_08, "inter_mean_others": others,
        "near_duplicate_rate": near.near_duplicate_rate, "mean_distinct_neighbors": near.mean_distinct_neighbors,
        "distinct_2": lex.distinct_2, "compression_ratio": lex.compression_ratio,
        "n_prompts": (sim.counts > 0).sum(axis=0), "n_responses": sim.counts.sum(axis=0)})
    return t, warnings


def intra_per_prompt(sim: SimilarityStats, names: list[str]) -> pd.DataFrame:
    k_idx, p_idx = np.nonzero(sim.valid.T)      # system-major, prompts in store order
    return pd.DataFrame({
        "system": [names[k] for k in k_idx], "prompt_id": [sim.prompt_ids[p] for p in p_idx],
        "n_samples": sim.counts[p_idx, k_idx], "intra": sim.intra[p_idx, k_idx]})


def near_duplicate_table(near: NeighborResults, names: list[str]) -> pd.DataFrame:
    d = near.near_duplicates
    order = np.lexsort((-d.similarity, d.prompt))
    return pd.DataFrame({
        "prompt_id": [near.prompt_ids[p] for p in d.prompt[order]],
        "system_a": [names[s] for s in d.system_a[order]], "system_b": [names[s] for s in d.system_b[order]],
        "similarity": d.similarity[order].astype(np.float64), "exact": d.exact[order],
        "cluster": d.cluster[order],
        "text_a": [d.text_a[i] for i in order] if d.text_a else [""] * len(order),
        "text_b": [d.text_b[i] for i in order] if d.text_b else [""] * len(order)},
        columns=["prompt_id", "system_a", "system_b", "similarity", "exact", "cluster", "text_a", "text_b"])


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
    from hivemind.snapshot import prompt_set_hash   # here, not at the top: snapshot is a later stage

    sim, near = m.similarity, m.neighbors
    return {
        "hivemind_version": __version__, "embedder": config.embedder.id, "floor": sim.floor,
        "threshold": config.near_duplicate_threshold, "n_prompts": len(sim.prompt_ids),
        "n_responses": int(sim.counts.sum()), "systems": names,
        "bootstrap": {"n": BOOTSTRAP_N, "seed": config.seed, "level": BOOTSTRAP_LEVEL},
        "created_at": now(),
        "prompt_set_hash": prompt_set_hash(store.prompts()), "n_empty_skipped": n_empty, "n_neighbors": N_NEIGHBORS,
        "template_index": f"{near.template_index}; first {TEMPLATE_SAMPLES} sample(s) per system per prompt",
        "warnings": warnings,
    }


def write_atomically(run_dir: Path, tables: dict[str, pd.DataFrame], info: dict) -> list[Path]:
    """All files to a temporary folder first; rename into place only once every one is written."""
    run_dir = Path(run_dir)
    check_folder(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".analyze-", dir=run_dir))
    except OSError as err:
        raise file_error(err, "write the analysis tables", run_dir) from None
    try:
        for name, frame in tables.items():
            indexed = name == "intra_model_buckets.csv" or name.startswith("inter_model_similarity")
            frame.to_csv(tmp / name, index=indexed)
        (tmp / "analysis.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        files = []
        for name in [*tables, "analysis.json"]:
            os.replace(tmp / name, run_dir / name)
            files.append(run_dir / name)
        return files
    except OSError as err:
        raise file_error(err, "write the analysis tables", run_dir) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
