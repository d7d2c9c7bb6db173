"""`hivemind list`: every run under the results folder, how far it got, and what to run next. Read only:
stores are opened read-only and nothing is written, so it is safe while another process collects."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from hivemind.core.config import RUN_CONFIG_NAME, STORE_NAME
from hivemind.core.config_files import load_config
from hivemind.core.errors import HivemindError
from hivemind.results.folder import REPORT_HTML, results_root

STAGES = ("new", "collected", "embedded", "scored", "analysed", "reported")


@dataclass
class RunState:
    name: str
    folder: Path
    stage: str                 # the last stage reached, one of STAGES
    answers: int | None
    errors: int | None
    systems: int | None
    last_change: float         # newest file's mtime (seconds since the epoch)
    next_command: str
    note: str = ""             # why a stage is incomplete, or what is unreadable
    stale: str = ""            # "stale: ..." when the analysis or the report no longer describes the store


def run_state(folder: Path) -> RunState:
    """How far the run in `folder` got: each stage's evidence is in the store or the run folder."""
    from hivemind.results.fingerprint import read_analysis, store_fingerprint
    from hivemind.store import Store

    name, last = folder.name, _last_change(folder)
    try:
        config = load_config(folder / RUN_CONFIG_NAME)
    except HivemindError as err:
        return RunState(name, folder, "new", None, None, None, last, "", f"unreadable config ({_first(err)})")
    ids = [s.identity for s in config.systems]
    state = RunState(name, folder, "new", 0, 0, len(ids), last, f"hivemind collect {name}")
    if not (folder / STORE_NAME).is_file():
        return state
    try:
        with Store.open_readonly(folder / STORE_NAME) as store:
            outcomes = store.system_outcomes(ids)
            state.answers = sum(o[0] for o in outcomes.values())
            state.errors = sum(o[1] for o in outcomes.values())
            missing = store.count_not_embedded(config.embedder.id, ids) if state.answers else None
            n_prompts = len(store.prompts())
            unscored = [s.name for s in config.scorers if store.answers_to_score(s.name, ids)] \
                if config.scorers and not missing else []
            analysis = read_analysis(folder)
            # the content the store holds now, against what the analysis recorded (not file times:
            # `analyze --controls` writes the store while it analyses, and a copy keeps no mtimes)
            current = store_fingerprint(store, config) if analysis and analysis.fingerprint else None
    except HivemindError as err:
        state.note = f"unreadable store ({_first(err)})"
        return state
    expected = config.samples * len(ids) * n_prompts
    if not state.answers:
        return state
    state.stage, state.next_command = "collected", f"hivemind embed {name}"
    from hivemind.results.record import is_imported  # imported runs have unequal samples and nothing to collect

    if expected and state.answers + state.errors < expected and not is_imported(config, folder):
        state.note = f"{state.answers + state.errors} of {expected} samples asked; `hivemind collect {name}` resumes"
    if missing:
        state.note = state.note or f"{missing} answers not embedded yet"
        return state
    state.stage, state.next_command = "embedded", f"hivemind analyze {name}"
    if config.scorers:
        if unscored:
            state.next_command = f"hivemind score {name}"
            state.note = state.note or f"not scored yet by {', '.join(unscored)}"
        else:
            state.stage = "scored"
    if analysis is not None and not analysis.complete:
        state.note = f"the last analysis did not finish ({analysis.why_incomplete}); not counted as analysed"
        state.next_command = f"hivemind analyze {name}"
        return state
    if analysis is not None:
        _analysed_state(state, folder, analysis, current)
    return state


def _analysed_state(state: RunState, folder: Path, analysis, current: str | None) -> None:
    """analysed or reported, and stale when the store changed after the analysis or the analysis after
    the report (hivemind.results.fingerprint)."""
    from hivemind.results.fingerprint import report_is_current

    name = state.name
    state.stage, state.next_command = "analysed", f"hivemind report {name}"
    reported = (folder / REPORT_HTML).is_file()
    if reported:
        state.stage, state.next_command = "reported", f"hivemind snapshot publish {name}"
    if analysis.fingerprint is None:
        state.stale = (f"stale: analysed by an older hivemind that recorded no content fingerprint "
                       f"(run `hivemind analyze {name}`)")
        state.next_command = f"hivemind analyze {name}"
    elif analysis.fingerprint != current:
        state.stale = f"stale: store changed since analysis (run `hivemind analyze {name}`)"
        state.next_command = f"hivemind analyze {name}"
    elif reported and not report_is_current(folder):
        state.stale = f"stale: analysis newer than the report (run `hivemind report {name}`)"
        state.next_command = f"hivemind report {name}"


def list_runs(results_dir: str | Path | None = None) -> list[RunState]:
    """Every run folder under the results folder (snapshots and hidden folders are not runs)."""
    from hivemind.runs.leaderboard import run_folders

    base = results_root(results_dir)
    if not base.is_dir():
        raise HivemindError(f"{base}: no results folder here; run `hivemind run demo` to make a first run, or "
                            f"name the folder with --results")
    return [run_state(folder) for folder in run_folders(base)]


def render(states: list[RunState], base: Path) -> str:
    if not states:
        return f"no runs under {base}/; start one with `hivemind run demo` or `hivemind collect CONFIG`"
    header = ("run", "state", "systems", "answers", "errors", "last change", "next")
    rows = [(s.name, "stale" if s.stale else s.stage, _n(s.systems), _n(s.answers), _n(s.errors),
             time.strftime("%Y-%m-%d %H:%M", time.localtime(s.last_change)), s.next_command) for s in states]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    lines = [line(header), *(line(r) for r in rows)]
    notes = [f"  {s.name}: {text}" for s in states for text in (s.stale, s.note) if text]
    stages = " -> ".join(STAGES[1:])
    return "\n".join(lines + (["", "notes:", *notes] if notes else []) + ["", f"stages: {stages} (under {base}/)"])


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def _first(err: Exception) -> str:
    return str(err).splitlines()[0]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _last_change(folder: Path) -> float:
    times = [_mtime(p) for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []
    return max(times, default=_mtime(folder))
