"""The measuring passes over the stored, embedded responses: what hivemind.analyze.stage builds its tables from.

Two passes in this process (local_passes): the first (measure) feeds similarity, near neighbours, shared
phrases and the relevance line's calibration sample; the second (measure_diversity) gates every answer and
measures the diversity metrics; a third (measure_gate_by_scorer) runs only with two or more gating scorers.
Every pass walks the prompts through one loop, each_prompt. hivemind.engines.ray.analysis maps the same
passes over prompt shards on Ray, with the same per-prompt code (FirstPass.add, add_gated) and the same
gate (measure_diversity). The floor, idea line and relevance line the tables use are the run's pinned
calibration (hivemind.analyze.reference, applied by apply_calibration), not the first pass's own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

from hivemind.analyze.diversity import DiversityAccumulator, DiversityStats
from hivemind.analyze.equivalence_choice import equivalence_for
from hivemind.analyze.partitions import KnownPartitions, PartitionsAhead, failed_answers
from hivemind.analyze.neighbors import NearDuplicateFinder, NeighborResults
from hivemind.analyze.phrases import LexicalAccumulator, LexicalStats, PromptWording, shared_phrases
from hivemind.analyze.quality_gate import (
    CALIBRATION_ANSWERS,
    Gate,
    build_gate,
    calibrate_relevance,
    gate_by_scorer,
    relevance_gap,
    single_scorer_gates,
)
from hivemind.analyze.similarity import SimilarityAccumulator, SimilarityStats
from hivemind.core.config import RunConfig
from hivemind.results import contract as results
from hivemind.store import PromptGroup, Store
from hivemind.store.records import drop_empty, is_empty

N_NEIGHBORS = 50
TEMPLATE_SAMPLES = 1          # per system per prompt, indexed for cross-prompt templates
MAX_TEMPLATES = 1000
PHRASES_PER_PROMPT = 20
MAX_PHRASES = 10_000


@dataclass
class Measured:
    similarity: SimilarityStats
    neighbors: NeighborResults
    lexical: LexicalStats
    phrases: list[tuple[str, object]]       # (prompt_id, SharedPhrase)
    n_phrases_found: int
    sample_vectors: np.ndarray | None = None    # answers sampled to calibrate the relevance line
    sample_prompts: list[str] = field(default_factory=list)
    max_samples: int = 0                        # most non-empty answers of one system to one prompt
    diversity: DiversityStats | None = None
    gate: Gate | None = None
    controls: list = field(default_factory=list)   # controls.ControlSystem
    engine: str = "local"                          # or "ray (N prompt shards)"; analysis.json records it
    equivalence_note: str | None = None            # why the configured equivalence method was not used
    calibration: object | None = None              # results.calibration.Calibration: the pinned lines
    floor_present: float | None = None             # the floor of the systems present (relative; for the record)


def apply_calibration(m: Measured, calibration) -> None:
    """Measure against the pinned calibration (hivemind.analyze.reference) instead of the lines of the systems
    present: the floor every rescaled value and the idea line use, and (calibrated_gate) the relevance line.
    None: the systems present calibrate, as before calibrations were pinned."""
    if calibration is None:
        return
    m.calibration, m.floor_present = calibration, m.similarity.floor
    m.similarity.floor = calibration.floor


def local_passes(store: Store, config: RunConfig, ids: list[str], all_ids: list[str], progress: bool,
                 calibration=None, partitions_ahead: bool | None = None) -> Measured:
    """The two passes over the store in this process: similarity, neighbours and phrases; then diversity
    against `calibration` (the pinned lines; None: the first pass's own). A learned equivalence partitions in a
    second process during the first pass when that pays (hivemind.analyze.partitions; `partitions_ahead` True /
    False forces it on / off). hivemind.engines.ray.analysis maps the same passes over prompt shards on Ray."""
    # the learned partitions need nothing the first pass measures: a second core makes them meanwhile
    learned = equivalence_for(config, store, all_ids, None).equivalence if config.equivalence.method == "learned" \
        else None
    with PartitionsAhead.start(store, config.embedder.id, all_ids, len(ids), learned, partitions_ahead) as ahead:
        measured = measure(store, config, ids, progress)
        apply_calibration(measured, calibration)
        measured.diversity, measured.gate = measure_diversity(store, config, all_ids, len(ids), measured,
                                                              progress, ahead=ahead)
    return measured


# The loop ------------------------------------------------------------------------------------------
def each_prompt(groups: Iterable[PromptGroup], desc: str = "", total: int | None = None, progress: bool = False,
                drop_blank: bool = False) -> Iterator[PromptGroup]:
    """The one loop over prompt groups that every pass (and every Ray shard) walks: a progress bar, and the
    blank handling. With `drop_blank` each group keeps its real answers only (the similarity figures), a
    group with none is skipped; without it blank answers and failed requests stay in (the quality-gated
    figures count them as failing answers, add_gated)."""
    for group in tqdm(groups, total=total, desc=desc, unit="prompt", disable=not progress):
        if drop_blank:
            group = drop_empty(group)
            if group is None:
                continue
        yield group


# The first pass -----------------------------------------------------------------------------------
def prompt_phrases(group, prompt_text: str) -> list[tuple[str, object]]:
    """One prompt's shared phrases, (prompt_id, SharedPhrase), at most PHRASES_PER_PROMPT. The prompt's own
    wording, restated by several answers, goes last: it is not a shared idea."""
    found = shared_phrases(group.texts, group.systems.tolist(), limit=None)
    wording = PromptWording(prompt_text)
    found.sort(key=lambda ph: wording.echoes(ph.phrase))
    return [(group.prompt_id, ph) for ph in found[:PHRASES_PER_PROMPT]]


def calibration_per_prompt(n_prompts: int) -> int:
    """How many answers per prompt are drawn to calibrate the relevance line (about CALIBRATION_ANSWERS)."""
    return max(1, CALIBRATION_ANSWERS // max(n_prompts, 1))


@dataclass
class FirstPass:
    """What the first pass over some prompts leaves (all of them here, one shard's on Ray): the
    accumulators' state and the extras; finish_first_pass turns it into Measured."""
    similarity: SimilarityAccumulator
    near: NearDuplicateFinder
    phrases: list = field(default_factory=list)            # (prompt_id, SharedPhrase), prompt order
    sample_vectors: list = field(default_factory=list)     # calibration draws on these prompts
    sample_prompts: list[str] = field(default_factory=list)
    max_samples: int = 0

    @classmethod
    def start(cls, n_systems: int, threshold: float) -> FirstPass:
        return cls(similarity=SimilarityAccumulator(n_systems),
                   near=NearDuplicateFinder(n_systems, threshold=threshold, n_neighbors=N_NEIGHBORS,
                                            template_samples=TEMPLATE_SAMPLES))

    def add(self, group: PromptGroup, take: np.ndarray | None, prompt_text: str) -> None:
        """One prompt's real answers (blank ones dropped); `take`: the answers drawn for the calibration."""
        self.similarity.add(group)
        self.near.add(group)
        self.max_samples = max(self.max_samples, int(np.bincount(group.systems).max()))
        if take is not None:
            self.sample_vectors.append(group.vectors[take])
            self.sample_prompts += [group.prompt_id] * len(take)
        if group.texts:
            self.phrases += prompt_phrases(group, prompt_text)


def finish_first_pass(part: FirstPass, lexical: LexicalStats, seed: int) -> Measured:
    """The first pass's state over every prompt -> Measured (the Ray engine merges its shards' first)."""
    n_found = len(part.phrases)
    # Keep the most widely shared phrases overall, stable in prompt order among equals.
    phrases = sorted(part.phrases, key=lambda item: (-item[1].n_systems, -item[1].n_words))[:MAX_PHRASES]
    return Measured(part.similarity.finish(), part.near.finish(max_templates=MAX_TEMPLATES, seed=seed), lexical,
                    phrases, n_found, sample_vectors=np.vstack(part.sample_vectors) if part.sample_vectors else None,
                    sample_prompts=part.sample_prompts, max_samples=part.max_samples)


def measure(store: Store, config: RunConfig, ids: list[str], progress: bool) -> Measured:
    part = FirstPass.start(len(ids), config.near_duplicate_threshold)
    lex = LexicalAccumulator(len(ids))
    rng = np.random.default_rng(config.seed)
    n_prompts = store.n_prompts_with_text(ids)
    per_prompt = calibration_per_prompt(n_prompts)
    prompt_texts = {p.id: p.text for p in store.prompts()}
    groups = store.iter_prompt_groups(config.embedder.id, ids)
    for group in each_prompt(groups, "analyze", n_prompts, progress, drop_blank=True):
        part.add(group, rng.permutation(len(group.systems))[:per_prompt], prompt_texts.get(group.prompt_id, ""))
        for text, system in zip(group.texts, group.systems.tolist()):
            lex.add(text, system)
    return finish_first_pass(part, lex.finish(), config.seed)


# The second pass: the quality gate and the diversity metrics --------------------------------------
def measure_diversity(store: Store, config: RunConfig, ids: list[str], n_real: int, m: Measured, progress: bool,
                      on_shards: Callable[[Gate, float], DiversityAccumulator] | None = None,
                      ahead: PartitionsAhead | None = None) -> tuple[DiversityStats, Gate]:
    """The second pass: gate every answer (relevance line and scorer thresholds calibrated from the first
    pass), then the diversity metrics per (system, prompt) and pooled per prompt, "same idea" judged by the
    run's equivalence method (analyze.equivalence_choice). `on_shards(gate, equivalence)`: the Ray engine's map
    over prompt shards, merged; by default one loop here. `ahead`: the partitions made meanwhile, when started."""
    gate = calibrated_gate(store, config, ids, m)
    chosen = equivalence_for(config, store, ids, m.similarity.floor)
    m.equivalence_note = chosen.note
    if on_shards is not None:
        return on_shards(gate, chosen.equivalence).finish(), gate
    equivalence = ahead.known(chosen.equivalence) if ahead is not None else chosen.equivalence
    acc = diversity_accumulator(ids, n_real, equivalence, {p.id: p.text for p in store.prompts()})
    groups = store.iter_answer_groups(config.embedder.id, ids)
    add_gated_groups(each_prompt(groups, "diversity", len(m.similarity.prompt_ids), progress), ids, [(acc, gate)])
    return acc.finish(), gate


def diversity_accumulator(ids: list[str], n_real: int, equivalence, prompt_texts: dict[str, str]
                          ) -> DiversityAccumulator:
    """One diversity accumulator for these systems (the same on every engine and shard)."""
    return DiversityAccumulator(len(ids), n_real, equivalence=equivalence, system_ids=list(ids),
                                prompt_texts=prompt_texts)


def calibrated_gate(store: Store, config: RunConfig, ids: list[str], m: Measured) -> Gate:
    """The run's quality gate: the pinned relevance line (m.calibration), else the line calibrated on the first
    pass's sampled answers (with the reason when it cannot be, quality.relevance_gap); and the configured
    scorers' thresholds."""
    prompt_vectors = store.prompt_vectors(config.embedder.id)
    if m.calibration is not None:
        return build_gate(config.scorers, store.scores_frame(ids), prompt_vectors, m.calibration.relevance_line,
                          no_line_reason=m.calibration.no_line_reason)
    line = None
    if m.sample_vectors is not None:
        line = calibrate_relevance(m.sample_vectors, m.sample_prompts, prompt_vectors, seed=config.seed)
    return build_gate(config.scorers, store.scores_frame(ids), prompt_vectors, line,
                      no_line_reason=relevance_gap(m.sample_prompts, prompt_vectors))


def add_gated_groups(groups: Iterable[PromptGroup], ids: list[str],
                     gated: list[tuple[DiversityAccumulator, Gate]]) -> None:
    """Every prompt's answers into each (accumulator, gate) pair, in that order."""
    for group in groups:
        for acc, gate in gated:
            add_gated(acc, group, gate, ids)


def add_gated(acc: DiversityAccumulator, group: PromptGroup, gate: Gate, ids: list[str]) -> None:
    """One prompt's answers (Store.iter_answer_groups: failures included) into a diversity accumulator: a
    blank answer or failed request is an answer that fails the gate (hivemind.analyze.diversity derives where it
    enters each metric). Every engine and every gate goes through here, so all count failures alike."""
    failed = failed_answers(group)
    passed = gate.passes(group.prompt_id, [ids[k] for k in group.systems.tolist()], group.sample_numbers,
                         group.vectors)
    acc.add(group, passed & ~failed, failed)


def measure_gate_by_scorer(store: Store, config: RunConfig, ids: list[str], names: list[str], m: Measured,
                           progress: bool) -> pd.DataFrame | None:
    """gate_by_scorer.csv (quality.gate_by_scorer) when two or more scorers gate: one more pass over the
    answers of the real systems, measuring the diversity metrics once per single-scorer gate."""
    gates = single_scorer_gates(m.gate)
    if not gates:
        return None
    k = len(ids)
    # a gate decides which answers count, not which say the same thing: the partitions of the diversity pass
    # are reused (distinct ideas and utility under each gate without partitioning again), the pooled view skipped
    known = KnownPartitions(m.diversity.labels, ids)
    accs = {name: DiversityAccumulator(k, k, equivalence=known, system_ids=list(ids), pooled=False) for name in gates}
    groups = store.iter_answer_groups(config.embedder.id, ids)
    add_gated_groups(each_prompt(groups, "gate by scorer", len(m.similarity.prompt_ids), progress), ids,
                     [(accs[name], gate) for name, gate in gates.items()])
    primary = results.primary_key(m.max_samples)
    run_means = {name: values[:k] for name, values in m.diversity.system_means().items()}
    return gate_by_scorer(names, ids, m.gate, run_means,
                          {name: acc.finish().system_means() for name, acc in accs.items()}, primary)
