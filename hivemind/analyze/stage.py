"""The measurement stage: one streaming pass over the stored, embedded responses -> the tables.

Inputs are checked first (nothing is written when they are unusable); then every table is computed in
memory from per-prompt accumulators and written through the results folder's one write path
(hivemind.results.folder): staged, scanned for secrets, renamed into place with SIGINT/SIGTERM/SIGHUP held
back for those milliseconds, analysis.json last; a failed or refused analysis leaves the previous tables as
they were. Only a SIGKILL during the renames could mix old and new tables.

Here: the entry (analyze_run), the input checks and the write. The passes over the store are in
hivemind.analyze.passes, the tables built from what they measured in hivemind.analyze.tables.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hivemind.analyze.passes import local_passes, measure_gate_by_scorer
from hivemind.analyze.reference import pinned_calibration
from hivemind.analyze.tables import analysis_info, build_tables, optional_tables
from hivemind.core.config import RunConfig
from hivemind.core.errors import HivemindError
from hivemind.results import contract as results
from hivemind.results.folder import ANALYSIS, writing
from hivemind.store import Store
from hivemind.store.run import Run

TABLES = [*results.TABLES, ANALYSIS]


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


def analyze_run(run: Run | RunConfig, progress: bool = True, controls: bool = False,
                passes=local_passes, recalibrate: bool = False) -> AnalysisSummary:
    """Measure every table. With `controls`, synthetic control systems built from the run's own answers
    (hivemind.analyze.controls) are stored, embedded, scored where scorers exist, and measured beside the real
    systems (marked kind = control; they never change a real system's figures). `passes` computes the
    measurements (local_passes, or the Ray engine's); everything else is the same for every engine. The floor,
    idea line and relevance line are the run's pinned calibration (hivemind.analyze.reference), measured from
    the reference first when none is pinned or with `recalibrate`."""
    # controls are written into the store; otherwise analysis only reads it
    with Run.of(run, read_only=not controls) as run:
        config, store = run.config, run.store()
        ids = [s.identity for s in config.systems]
        names = [s.name for s in config.systems]
        n_empty = check_inputs(store, config, ids)
        control_systems, control_note = [], None
        if controls:
            from hivemind.analyze.controls import add_controls
            control_systems, control_note = add_controls(run, progress=progress)
        calibration, calibration_notes = pinned_calibration(store, config, recalibrate)
        measured = passes(store, config, ids, ids + [c.identity for c in control_systems], progress,
                          calibration=calibration)
        measured.controls = control_systems
        prompts = {p.id: p.text for p in store.prompts()}
        tables, warnings = build_tables(store, config, ids, names, measured, prompts)
        tables.update(optional_tables(store, config, tables))
        by_scorer = measure_gate_by_scorer(store, config, ids, names, measured, progress)
        if by_scorer is not None:
            tables["gate_by_scorer.csv"] = by_scorer
        if control_note:
            warnings.append(control_note)
        warnings += calibration_notes
        info = analysis_info(config, names, measured, n_empty, warnings, store)
        # What the tables were built on (hivemind.results.fingerprint), and which files make this analysis whole:
        # snapshot publish, list and the leaderboard check both instead of trusting file times.
        from hivemind.results.fingerprint import store_fingerprint
        info["fingerprint"], info["tables"] = store_fingerprint(store, config), sorted(tables)
        files = write_atomically(config.run_dir, tables, info, config)   # refused whole if a key is in it
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
    from hivemind.results.record import is_imported

    names = {s.identity: s.name for s in config.systems}
    imported = is_imported(config)   # no prompt source to collect from: the advice is to import
    fill = "hivemind import FILES --name NEW-RUN" if imported else f"hivemind collect {config.name}"
    per_system = store.response_counts_per_system(ids)
    total = sum(n for n, _ in per_system.values())
    if total == 0:
        raise HivemindError(f"{config.store_path}: run {config.name!r} has no stored responses for its systems; "
                            f"run `{fill}` first")
    missing = [names[s] for s, (n, _) in per_system.items() if n == 0]
    if missing:
        raise HivemindError(f"{config.store_path}: no stored responses for system(s) {', '.join(missing)}; "
                            f"run `{fill}` first (or remove them from the config)")
    all_blank = [names[s] for s, (n, b) in per_system.items() if n == b]
    if all_blank:
        again = "import their answers again" if imported else "collect again"
        raise HivemindError(f"{config.store_path}: every response of system(s) {', '.join(all_blank)} is empty; "
                            f"check their settings (model, api_base, params) and {again}")
    not_embedded = store.count_not_embedded(config.embedder.id, ids)
    if not_embedded:
        raise HivemindError(f"{config.store_path}: {not_embedded} of {total} responses have no "
                            f"{config.embedder.id} embedding; run `hivemind embed {config.name}` first")
    most = store.max_samples_per_prompt(ids)
    single = [names[s] for s, m in most.items() if m < 2]
    # A run designed with one sample per prompt (`samples: 1`, e.g. imported one-answer-per-model
    # outputs) still has inter-model similarity; its intra tables are left empty, with a warning.
    # With `samples` >= 2, a collected system without two samples anywhere is a broken collection: an error.
    # Imported runs legitimately have unequal samples per system (NoveltyBench, AlpacaEval exports): the
    # samples present are used, and build_tables says which systems have no intra figures.
    if single and config.samples >= 2 and not imported:
        raise HivemindError(f"system(s) {', '.join(single)} have fewer than 2 non-empty samples on every prompt, so "
                            f"intra-model similarity is undefined; set `samples: 2` or more in the config of run "
                            f"{config.name!r} and run `hivemind collect {config.name}` again")
    return int(sum(b for _, b in per_system.values()))


def write_atomically(run_dir: Path, tables: dict[str, pd.DataFrame], info: dict, config=None) -> list[Path]:
    """Every table and analysis.json through the results folder's one write path: staged, scanned for
    secrets, then renamed into place together; a refused or failed write leaves the previous files."""
    with writing(run_dir, "analyze", config=config) as out:
        for name, frame in tables.items():
            indexed = name == "intra_model_buckets.csv" or name.startswith("inter_model_similarity")
            out.csv(name, frame, index=indexed)
        out.text(ANALYSIS, json.dumps(info, indent=2))
    return out.written
