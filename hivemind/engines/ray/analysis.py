"""The analysis on Ray: per-prompt work mapped over prompt shards, reduced on the driver.

Every figure hivemind.analyze.passes measures is either per prompt, additive over prompts, or a function of
per-prompt rows, except three things that are global by definition, handled here as follows:

- per prompt, mapped over shards of consecutive prompts (Ray tasks that read their prompts' groups from
  the store): the similarity accumulator's rows (counts, intra, the K x K numerators), near-duplicate
  pairs and clusters, Fig. 8 neighbour counts, shared phrases, and in the second pass every diversity
  cell (Vendi, distinct ideas, effective diversity, utility, per-prompt lexical) and the pooled view.
  The driver concatenates the rows in prompt order and renumbers prompt indexes and cluster ids by each
  shard's offset, so the accumulators' state is what one pass over all prompts would have built.
- sums over all prompts (the floor's total vector, per-system counters) are added up on the driver:
  the same sums in another association order, so the floor of the systems present agrees to ~1e-16, not
  bit for bit. The floor and lines the tables use are the pinned calibration (hivemind.analyze.reference,
  resolved by the single-process stage before the passes), the same number on both engines.
- global, done on the driver exactly as the single-process engine does it:
  * the cross-prompt template index (a nearest-neighbour search across prompts): the shards return their
    template samples (one answer per system per prompt), the driver builds the index over all of them;
  * the relevance line's calibration sample: a seeded random draw per prompt from one generator, so it
    depends on every earlier prompt. The driver replays the generator over the group sizes (a count
    query), and each shard returns the vectors of the answers drawn on its prompts;
  * the per-system lexical figures over all of a system's answers (distinct-n over one n-gram set, one
    zlib stream): not decomposable over prompts, so they are mapped over *systems* instead, one task per
    system reading its answers in the same order;
  * the quality gate (hivemind.analyze.passes.measure_diversity, the same function on both engines);
  * bootstrap intervals, rankings and every table: built from the merged state by hivemind.analyze.tables.

The result is the single-process engine's tables (tests/test_distributed.py compares every CSV to 1e-6
and counts exactly on real AlpacaEval answers). Workers read the store by path (read-only), so with a
remote cluster the results folder must be on a shared file system.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from hivemind.analyze import passes
from hivemind.analyze import stage as single
from hivemind.analyze.diversity import DiversityAccumulator
from hivemind.analyze.neighbors import NearDuplicateCluster, NearDuplicateFinder
from hivemind.analyze.passes import FirstPass, Measured, add_gated_groups, each_prompt
from hivemind.analyze.phrases import LexicalAccumulator, LexicalStats
from hivemind.analyze.similarity import SimilarityAccumulator
from hivemind.core.config import RunConfig
from hivemind.core.errors import HivemindError
from hivemind.engines.ray.cluster import connected, n_cpus, remote_error
from hivemind.engines.ray.pool import FAULT_ENV, die_once
from hivemind.store import Store
from hivemind.store.records import is_empty
from hivemind.store.run import Run

SHARDS_PER_CPU = 4          # more shards than workers: a slow or retried shard holds up less of the run


@dataclass
class Shard:
    first: int | None           # prompt positions first <= p < end; None: open
    end: int | None
    prompt_ids: list[str]
    answers: int


# Planning -----------------------------------------------------------------------------------------------
def plan_shards(sizes: list[tuple[str, int, int]], n_shards: int) -> list[Shard]:
    """Consecutive prompts in about equal numbers of answers; the ranges cover every position."""
    n_shards = max(1, min(n_shards, len(sizes)))
    total = sum(n for _, _, n in sizes)
    shards, current, answers, seen = [], [], 0, 0
    for i, (prompt_id, position, n) in enumerate(sizes):
        current.append((prompt_id, position))
        answers, seen = answers + n, seen + n
        if seen * n_shards >= total * (len(shards) + 1) and i < len(sizes) - 1 and len(shards) < n_shards - 1:
            shards.append((current, answers))
            current, answers = [], 0
    shards.append((current, answers))
    out = []
    for i, (prompts, answers) in enumerate(shards):
        first = None if i == 0 else prompts[0][1]
        end = None if i == len(shards) - 1 else shards[i + 1][0][0][1]
        out.append(Shard(first, end, [p for p, _ in prompts], answers))
    return out


def calibration_draws(sizes: list[tuple[str, int, int]], n_prompts: int, seed: int) -> dict[str, np.ndarray]:
    """The answers analyze.passes.measure draws per prompt to calibrate the relevance line: the same
    generator, seeded alike, stepped through the same group sizes in the same order."""
    rng = np.random.default_rng(seed)
    per_prompt = passes.calibration_per_prompt(n_prompts)
    return {prompt_id: rng.permutation(n)[:per_prompt] for prompt_id, _, n in sizes}


# The map: first pass --------------------------------------------------------------------------------------
def measure_groups(groups, n_systems: int, threshold: float, draws: dict[str, np.ndarray],
                   prompt_texts: dict[str, str] | None = None) -> FirstPass:
    """analyze.passes.measure's loop over some prompts' groups, minus the per-system lexical figures."""
    part = FirstPass.start(n_systems, threshold)
    for group in each_prompt(groups, drop_blank=True):
        part.add(group, draws.get(group.prompt_id), (prompt_texts or {}).get(group.prompt_id, ""))
    return part


def _measure_shard(store_path: str, embedder: str, ids: list[str], shard: Shard, threshold: float,
                   draws: dict[str, np.ndarray], fault_file: str | None = None) -> FirstPass:
    store = Store.open_readonly(store_path)
    try:
        die_once(fault_file)            # chaos tests only (FAULT_ENV): this worker process dies mid-shard
        texts = {p.id: p.text for p in store.prompts()}
        return measure_groups(store.iter_prompt_groups(embedder, ids, (shard.first, shard.end)), len(ids),
                              threshold, draws, texts)
    finally:
        store.close()


def _lexical_system(store_path: str, embedder: str, system_id: str) -> LexicalStats:
    """The per-system lexical figures over one system's answers, in analyze.passes.measure's order."""
    store = Store.open_readonly(store_path)
    try:
        acc = LexicalAccumulator(1)
        for text in store.iter_system_texts(embedder, system_id):
            if not is_empty(text):
                acc.add(text, 0)
        return acc.finish()
    finally:
        store.close()


# The map: second pass -------------------------------------------------------------------------------------
def diversity_groups(groups, ids: list[str], n_real: int, equivalence, gate,
                     prompt_texts: dict[str, str] | None = None) -> DiversityAccumulator:
    """analyze.passes.measure_diversity's loop over some prompts' answer groups (Store.iter_answer_groups:
    blank answers and failed requests included, counted as failing by analyze.passes.add_gated)."""
    acc = passes.diversity_accumulator(ids, n_real, equivalence, prompt_texts or {})
    add_gated_groups(each_prompt(groups), ids, [(acc, gate)])
    return acc


def _diversity_shard(store_path: str, embedder: str, ids: list[str], n_real: int, shard: Shard,
                     equivalence, gate) -> DiversityAccumulator:
    store = Store.open_readonly(store_path)
    try:
        texts = {p.id: p.text for p in store.prompts()}
        return diversity_groups(store.iter_answer_groups(embedder, ids, (shard.first, shard.end)), ids, n_real,
                                equivalence, gate, texts)
    finally:
        store.close()


# The reduce -----------------------------------------------------------------------------------------------
def merge_similarity(parts: list[SimilarityAccumulator], n_systems: int) -> SimilarityAccumulator:
    """Per-prompt rows concatenated in shard order; the floor's sums added up."""
    out = SimilarityAccumulator(n_systems)
    for part in parts:
        out.prompt_ids += part.prompt_ids
        out.counts += part.counts
        out.intra += part.intra
        out.num += part.num
        if part.total is not None:
            out.total = part.total if out.total is None else out.total + part.total
        out.n_total += part.n_total
        out.prompt_sq += part.prompt_sq
        out.prompt_n_sq += part.prompt_n_sq
    return out


def merge_near(parts: list[NearDuplicateFinder], n_systems: int, threshold: float) -> NearDuplicateFinder:
    """One finder as if it had seen every shard's prompts in order: prompt indexes shifted by the prompts
    before the shard, cluster ids by the clusters before it; counters added; template samples kept for
    the cross-prompt index that finish() builds."""
    out = NearDuplicateFinder(n_systems, threshold=threshold, n_neighbors=passes.N_NEIGHBORS,
                              template_samples=passes.TEMPLATE_SAMPLES)
    for part in parts:
        offset, clusters = len(out.prompt_ids), out._next_cluster
        out.prompt_ids += part.prompt_ids
        for name in ("responses", "with_near_duplicate", "distinct_sum", "neighbors_sum", "neighbor_responses"):
            setattr(out, name, getattr(out, name) + getattr(part, name))
        for pairs in part.pair_parts:
            out.pair_parts.append({**pairs, "prompt": pairs["prompt"] + offset, "cluster": pairs["cluster"] + clusters})
        out.clusters += [NearDuplicateCluster(prompt=c.prompt + offset, cluster=c.cluster + clusters, size=c.size,
                                              systems=c.systems) for c in part.clusters]
        out._next_cluster += part._next_cluster
        out.template_vectors += part.template_vectors
        for keys in part.template_keys:
            keys = keys.copy()
            keys[:, 0] += offset
            out.template_keys.append(keys)
        out.by_n += part.by_n
        out.n_capped += part.n_capped
    return out


def merge_diversity(parts: list[DiversityAccumulator], ids: list[str], n_real: int,
                    equivalence) -> DiversityAccumulator:
    out = passes.diversity_accumulator(ids, n_real, equivalence, {})
    for part in parts:
        out.prompt_ids += part.prompt_ids
        out.labels += part.labels
        out.counts += part.counts
        out.failed += part.failed
        for name in out.rows:
            out.rows[name] += part.rows[name]
        for name in out.pooled:
            out.pooled[name] += part.pooled[name]
    return out


def merge_lexical(parts: list[LexicalStats]) -> LexicalStats:
    """Each system's figures came from its own task: stack them in system order."""
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])   # noqa: E731
    return LexicalStats(distinct_1=cat("distinct_1"), distinct_2=cat("distinct_2"), distinct_3=cat("distinct_3"),
                        compression_ratio=cat("compression_ratio"), mean_words=cat("mean_words"))


def merge_first_pass(parts: list[FirstPass], n_systems: int, threshold: float) -> FirstPass:
    """One first pass as if it had seen every shard's prompts in order (the shards' lists concatenated)."""
    return FirstPass(similarity=merge_similarity([p.similarity for p in parts], n_systems),
                     near=merge_near([p.near for p in parts], n_systems, threshold),
                     phrases=[item for p in parts for item in p.phrases],
                     sample_vectors=[v for p in parts for v in p.sample_vectors],
                     sample_prompts=[x for p in parts for x in p.sample_prompts],
                     max_samples=max([p.max_samples for p in parts], default=0))


def reduce_first_pass(parts: list[FirstPass], n_systems: int, threshold: float, seed: int,
                      lexical: LexicalStats) -> Measured:
    """The shards' parts -> analyze.passes.Measured, as analyze.passes.measure would have returned it."""
    return passes.finish_first_pass(merge_first_pass(parts, n_systems, threshold), lexical, seed)


# The stage ------------------------------------------------------------------------------------------------
def analyze_run(run: Run | RunConfig, progress: bool = True, controls: bool = False, address: str | None = None,
                num_cpus: int | None = None, shards: int | None = None, verbose: bool = False,
                recalibrate: bool = False):
    """hivemind.analyze.stage.analyze_run with its two passes mapped over prompt shards on Ray; the rest (tables,
    optional tables, gate by scorer, analysis.json, the secrets scan, the pinned calibration) is the
    single-process code, so both engines measure against the same pinned floor and lines."""
    def ray_passes(store: Store, config: RunConfig, ids: list[str], all_ids: list[str], progress: bool,
                   calibration=None):
        with connected(address, num_cpus, verbose) as ray:
            count = shards or SHARDS_PER_CPU * n_cpus(ray)
            measured = measure(ray, store, config, ids, count, progress)
            passes.apply_calibration(measured, calibration)
            measured.diversity, measured.gate = measure_diversity(
                ray, store, config, all_ids, len(ids), measured, count, progress)
        measured.engine = f"ray ({count} prompt shards)"
        return measured

    return single.analyze_run(run, progress=progress, controls=controls, passes=ray_passes, recalibrate=recalibrate)


def measure(ray, store: Store, config: RunConfig, ids: list[str], n_shards: int, progress: bool) -> Measured:
    sizes = store.prompt_group_sizes(config.embedder.id, ids)
    draws = calibration_draws(sizes, store.n_prompts_with_text(ids), config.seed)
    plan = plan_shards(sizes, n_shards)
    path, embedder = str(config.store_path), config.embedder.id
    task = ray.remote(num_cpus=1)(_measure_shard)
    lexical = ray.remote(num_cpus=1)(_lexical_system)
    fault = os.environ.get(FAULT_ENV)
    first = [task.remote(path, embedder, ids, s, config.near_duplicate_threshold,
                         {p: draws[p] for p in s.prompt_ids}, fault) for s in plan]
    lex = [lexical.remote(path, embedder, sid) for sid in ids]
    parts = gather(ray, first + lex, "analyze", progress)
    return reduce_first_pass(parts[:len(first)], len(ids), config.near_duplicate_threshold, config.seed,
                             merge_lexical(parts[len(first):]))


def measure_diversity(ray, store: Store, config: RunConfig, ids: list[str], n_real: int, m: Measured,
                      n_shards: int, progress: bool):
    """analyze.passes.measure_diversity: the gate calibrated on the driver (the same function), the diversity
    cells on the shards."""
    def on_shards(gate, equivalence) -> DiversityAccumulator:
        plan = plan_shards(store.prompt_group_sizes(config.embedder.id, ids), n_shards)
        task = ray.remote(num_cpus=1)(_diversity_shard)
        gate_ref = ray.put(gate)
        refs = [task.remote(str(config.store_path), config.embedder.id, ids, n_real, s, equivalence, gate_ref)
                for s in plan]
        return merge_diversity(gather(ray, refs, "diversity", progress), ids, n_real, equivalence)

    return passes.measure_diversity(store, config, ids, n_real, m, progress, on_shards=on_shards)


def gather(ray, refs: list, desc: str, progress: bool) -> list:
    """ray.get in order, with a progress bar as tasks finish; a task's error as one HivemindError.

    A task whose worker process dies is retried by Ray (max_retries); they only read, so a retry is safe."""
    waiting = list(refs)
    with tqdm(total=len(refs), desc=f"{desc} (ray)", unit="task", disable=not progress) as bar:
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            bar.update(len(done))
            try:
                ray.get(done)
            except Exception as err:
                for ref in waiting:
                    ray.cancel(ref)
                raise HivemindError(f"a Ray task of the {desc} stage failed: {remote_error(err)}") from None
    return ray.get(refs)
