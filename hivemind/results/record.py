"""results.json, the run's machine-readable record (its schema is hivemind.results.contract.RunResults; the
terminal table drawn from it is hivemind.report.summary).

results.json is built from the tables analyze just wrote (leaderboard.csv, intra_model_buckets.csv,
analysis.json) and the store's per-system outcome counts, so every number in it equals a CSV cell. analyze
writes it with `report: null`; report fills in the report's path, relative to the run folder (a snapshot of
the folder is read on other machines, so no absolute path is ever written).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from hivemind import __version__
from hivemind.core.config import RUN_CONFIG_NAME, RunConfig
from hivemind.core.config_files import run_config_text
from hivemind.core.errors import HivemindError
from hivemind.results import contract as results
from hivemind.results.contract import RESULTS_JSON, Estimate, RunResults, SystemResult
from hivemind.results.folder import ANALYSIS, write_text
from hivemind.store.run import Run

DEFAULT_WIDTH = 100


# Building and writing results.json ----------------------------------------------------------------------

def _number(value):
    """A CSV cell as JSON: None for NaN/empty, int for whole counts, float otherwise, text as text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if hasattr(value, "item"):
        value = value.item()              # numpy scalar -> Python
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _float(value) -> float | None:
    value = _number(value)
    return None if value is None or isinstance(value, str) else float(value)


def _read_tables(run_dir: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    paths = [run_dir / ANALYSIS, run_dir / "leaderboard.csv", run_dir / "intra_model_buckets.csv"]
    for path in paths:
        if not path.is_file():
            raise HivemindError(f"{path}: missing; run `hivemind analyze {run_dir.name}` first")
    try:
        info = json.loads(paths[0].read_text(encoding="utf-8"))
        board = pd.read_csv(paths[1], dtype={"rank": str}, keep_default_na=True)
        buckets = pd.read_csv(paths[2], index_col=0)
    except (json.JSONDecodeError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise HivemindError(f"{run_dir}: unreadable analysis tables ({err}); run `hivemind analyze "
                            f"{run_dir.name}` again") from None
    return info, board, buckets


def build_results(run: Run | RunConfig) -> RunResults:
    """results.json's content from the analysed run's tables and store (read only)."""
    config = Run.config_of(run)
    run_dir = config.run_dir
    info, board, buckets = _read_tables(run_dir)
    ids = {s.name: s.identity for s in config.systems}
    with Run.of(run, read_only=True) as run:
        store = run.store()
        outcomes = store.system_outcomes(list(ids.values()))
        blanks = {sid: n_blank for sid, (_, n_blank) in store.response_counts_per_system(list(ids.values())).items()}
    primary = info.get("primary_key") or results.primary_key(2)
    systems = [_system_result(row, primary, buckets, outcomes.get(ids.get(row["system"], ""), None),
                              blanks.get(ids.get(row["system"], "")))
               for row in board.to_dict("records")]
    return RunResults(
        schema_version=results.RESULTS_SCHEMA_VERSION, hivemind_version=__version__,
        created_at=str(info.get("created_at", "")), run=config.name, embedder=str(info.get("embedder")),
        primary_key=primary, primary_display=results.METRICS[primary].display,
        primary_direction=results.METRICS[primary].direction, ranking=str(info.get("ranking", "")),
        n_prompts=int(info.get("n_prompts", 0)), n_responses=int(info.get("n_responses", 0)),
        headline={k: _float(v) for k, v in (info.get("headline") or {}).items()}, report=None, systems=systems,
        calibration=info.get("calibration") if isinstance(info.get("calibration"), dict) else None,
        relative_metrics=[name for name, metric in results.METRICS.items() if metric.relative],
        gated_by=(info.get("quality_gate") or {}).get("gated_by"))


def _system_result(row: dict, primary: str, buckets: pd.DataFrame, outcome, blank: int | None) -> SystemResult:
    name = str(row["system"])
    bucket = buckets.loc[name] if name in buckets.index else {}
    get = lambda key: _float(bucket.get(key)) if len(bucket) else None
    answers = errors = truncated = None
    cost = None
    if outcome is not None and row.get("kind", "system") == "system":
        answers, errors, truncated, cost = outcome
    else:
        blank = None
    failed = _number(row.get("n_failed"))
    share = lambda part, whole: (part / whole) if part is not None and whole else None
    rank = row.get("rank")
    return SystemResult(
        system=name, kind=str(row.get("kind", "system")), model=str(row.get("model", "")),
        setting=str(row.get("setting", "")), rank="" if rank is None or pd.isna(rank) else str(rank),
        primary=Estimate(value=_float(row.get(primary)), ci_low=_float(row.get(f"{primary}_ci_low")),
                         ci_high=_float(row.get(f"{primary}_ci_high"))),
        intra_mean=Estimate(value=_float(row.get("intra_mean")), ci_low=get("mean_ci_low"),
                            ci_high=get("mean_ci_high")),
        share_above_08=Estimate(value=_float(row.get("share_above_0.8")), ci_low=get("above_0.8_ci_low"),
                                ci_high=get("above_0.8_ci_high")),
        share_above_08_calibrated=get("above_0.8_calibrated"),
        inter_mean_others=Estimate(value=_float(row.get("inter_mean_others"))),
        near_duplicate_rate=_float(row.get("near_duplicate_rate")), pass_rate=_float(row.get("pass_rate")),
        answers=answers, errors=errors, truncated=truncated, cost_usd=cost, blank=blank,
        failed=None if failed is None else int(failed),
        truncated_share=share(truncated, answers),
        error_share=share(errors, (answers or 0) + (errors or 0)),
        metrics={key: _number(value) for key, value in row.items()},
    )


def write_results(run: Run | RunConfig, report: Path | None = None) -> Path:
    """Write results.json into the run folder atomically (analyze: report None; report: its path)."""
    config = Run.config_of(run)
    data = build_results(run)
    if report is not None:
        data.report = Path(report).resolve().relative_to(config.run_dir.resolve()).as_posix()
    return _write(config, data)


def set_report(config: RunConfig, report: Path) -> Path:
    """Record the report's path (relative to the run folder) in results.json; rebuilt if it is missing."""
    data = read_results(config.run_dir)
    if data is None:
        return write_results(config, report)
    data.report = Path(report).resolve().relative_to(config.run_dir.resolve()).as_posix()
    return _write(config, data)


def _write(config: RunConfig, data: RunResults) -> Path:
    """Through the results folder's write path: like every table, refused whole if it holds a key."""
    return write_text(config.run_dir / RESULTS_JSON, data.model_dump_json(indent=2) + "\n", config)


def read_results(run_dir: Path) -> RunResults | None:
    """results.json of a run folder; None when there is none (a run analysed by an older hivemind)."""
    path = Path(run_dir) / RESULTS_JSON
    if not path.is_file():
        return None
    try:
        return RunResults.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError) as err:
        first = err.errors()[0] if isinstance(err, ValidationError) else {"loc": (), "msg": str(err)}
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise HivemindError(f"{path}: not a valid results file ({where}: {first['msg']}); run `hivemind "
                            f"analyze {Path(run_dir).name}` again") from None


# config.yaml: the run's config, public part ------------------------------------------------------------

def save_run_config(config: RunConfig, folder: Path | None = None) -> Path:
    """Keep a copy of the config in the run folder, so stages can be named by run name alone."""
    folder = folder or config.run_dir
    return write_text(folder / RUN_CONFIG_NAME, run_config_text(config), config)


# import.json: where an imported run came from ---------------------------------------------------------

PROVENANCE_FILE = "import.json"   # where a run came from, and whether its snapshot was verified


def import_notes(config: RunConfig, run_dir: Path | None = None) -> dict | None:
    """What the import of this run recorded (import.json in `run_dir`, default the config's run folder), or
    None for a run that was not imported."""
    path = (run_dir or config.run_dir) / PROVENANCE_FILE
    try:
        notes = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        notes = None
    if isinstance(notes, dict):
        return notes
    # runs imported before import.json existed: their systems' models say so
    if config.systems and all(s.model.startswith("imported/") for s in config.systems):
        return {}
    return None


def is_imported(config: RunConfig, run_dir: Path | None = None) -> bool:
    """Imported runs have no prompt source to collect from: `hivemind collect` is never the advice for them."""
    return import_notes(config, run_dir) is not None
