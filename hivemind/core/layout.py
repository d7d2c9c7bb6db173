"""The results folder's layout: every file name a run folder and the results folder hold, declared once, and the
one resolver of where the results folder is (after `llm`'s user-dir: one function, one environment variable).

    results/                     --results, else a config's results_dir, else $HIVEMIND_RESULTS, else ./results
      leaderboard.csv/.md        every analysed run's systems (hivemind.runs.leaderboard)
      snapshots/                 published snapshots (hivemind.runs.snapshot)
      .calibrations/             pinned calibrations shared by comparable runs (hivemind.results.calibration)
      RUN/                       one run folder: its config copy, store, tables, report

Only hivemind.results.folder writes under it; this module only names things.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "HIVEMIND_RESULTS"
DEFAULT_ROOT = "results"

# The run folder ---------------------------------------------------------------------------------------
RUN_CONFIG = "config.yaml"
STORE = "store.sqlite"
LOCK = ".lock"
ANALYSIS = "analysis.json"
RESULTS = "results.json"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
REPORT_RECORD = "report.json"       # beside report.html: which analysis the report drew (hivemind.results.fingerprint)
INSPECT_DIR = "inspect"
WORK_DIR = ".work"                  # transient Ray shards (hivemind.engines.ray)
# The results folder -----------------------------------------------------------------------------------
LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_MD = "leaderboard.md"
SNAPSHOTS = "snapshots"
CALIBRATIONS = ".calibrations"      # pinned calibrations, one per (embedder, equivalence, prompt set)
RESERVED = {SNAPSHOTS, WORK_DIR, CALIBRATIONS}    # names under the results folder that are not runs



def results_root(given: str | Path | None = None) -> Path:
    """The results folder: `given` (a --results flag or a config's results_dir), else $HIVEMIND_RESULTS,
    else ./results. The one place that reads the variable."""
    if given:
        return Path(given)
    return Path(os.environ.get(ENV_VAR) or DEFAULT_ROOT)


def default_root() -> str:
    """results_dir of a config that does not set one (pydantic default_factory)."""
    return str(results_root())
