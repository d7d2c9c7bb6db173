"""The calibration a run is measured against: the floor, the idea line and the relevance line, measured from
a declared reference of systems and pinned per (embedder, equivalence, prompt set) by
hivemind.results.calibration, never from whichever systems the run happens to hold.

Why: a system's own figures (intra-model similarity, Vendi, distinct ideas, effective diversity, utility, pass
rate) must not move when another system joins the run. Vendi and raw intra never depended on the others; the
rescaled values, the idea line and the quality gate did, through the floor and the relevance line. With both
pinned, every own figure is a function of the system's answers and the pinned record alone.

The reference pass measures exactly what the first pass (hivemind.analyze.passes.measure) measures for the
two lines, over the reference systems only: the same prompt groups, the same seeded draw of answers for the
relevance line, the same floor identity. So with the reference equal to the run's systems it gives the
numbers an unpinned analysis gave, bit for bit.
"""
from __future__ import annotations

import numpy as np

from hivemind.analyze.diversity import idea_threshold
from hivemind.analyze.passes import calibration_per_prompt, each_prompt
from hivemind.analyze.quality_gate import calibrate_relevance, relevance_gap
from hivemind.analyze.similarity import SimilarityAccumulator
from hivemind.core.config import RunConfig
from hivemind.results.calibration import (
    Calibration,
    CalibrationKey,
    calibrations_locked,
    equivalence_id,
    read_calibration,
    write_calibration,
)
from hivemind.results.fingerprint import prompt_set_hash
from hivemind.store import Store, now


def calibration_key(store: Store, config: RunConfig) -> CalibrationKey:
    return CalibrationKey(config.embedder.id, equivalence_id(config), prompt_set_hash(store.prompts()))


def reference_names(config: RunConfig) -> list[str]:
    """The declared reference (`calibration_reference:`), else every system of the run."""
    return list(config.calibration_reference or [s.name for s in config.systems])


def measure_reference(store: Store, config: RunConfig, names: list[str]) -> Calibration:
    """The floor and the relevance line from the answers of the systems `names` only (see the module
    docstring: the first pass's own computation, restricted to them)."""
    ids = [config.system(name).identity for name in names]
    acc = SimilarityAccumulator(len(ids))
    rng = np.random.default_rng(config.seed)
    per_prompt = calibration_per_prompt(store.n_prompts_with_text(ids))
    vectors, prompts = [], []
    for group in each_prompt(store.iter_prompt_groups(config.embedder.id, ids), drop_blank=True):
        acc.add(group)
        take = rng.permutation(len(group.systems))[:per_prompt]
        vectors.append(group.vectors[take])
        prompts += [group.prompt_id] * len(take)
    sim = acc.finish()
    prompt_vectors = store.prompt_vectors(config.embedder.id)
    line = calibrate_relevance(np.vstack(vectors), prompts, prompt_vectors, seed=config.seed) if vectors else None
    key = calibration_key(store, config)
    return Calibration(embedder=key.embedder, equivalence=key.equivalence, prompt_set=key.prompt_set,
                       floor=sim.floor, relevance_line=line,
                       idea_line=None if sim.floor is None else idea_threshold(sim.floor),
                       reference=list(names), reference_ids=ids, n_answers=int(sim.counts.sum()), seed=config.seed,
                       computed_at=now(), no_line_reason=None if line is not None else relevance_gap(prompts,
                                                                                                    prompt_vectors))


def pinned_calibration(store: Store, config: RunConfig, recalibrate: bool = False) -> tuple[Calibration, list[str]]:
    """The record pinned for this run's key, measured from the reference and pinned first when there is none
    (or with `recalibrate`); and the warnings to show with the analysis."""
    notes: list[str] = []
    with calibrations_locked(config.results_dir):
        pinned = None if recalibrate else read_calibration(config.results_dir, calibration_key(store, config))
        if pinned is not None:
            declared = config.calibration_reference
            if declared and sorted(declared) != sorted(pinned.reference):
                notes.append(f"calibration_reference {declared} differs from the reference of the pinned calibration "
                             f"({pinned.reference}, {pinned.key.file_name}); the pinned one is used: run `hivemind "
                             f"analyze {config.name} --recalibrate` to measure it from the declared reference")
            return pinned, notes
        record = measure_reference(store, config, reference_names(config))
        if record.complete:
            write_calibration(config.results_dir, record)
        else:
            notes.append("the calibration is not pinned (no floor or no relevance line yet); it is measured again "
                         "at the next analysis")
        return record, notes
