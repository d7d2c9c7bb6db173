"""A whole hivemind session watched by a Python audit hook: every file opened for writing, every rename and
every SQLite connection under the results folder, with the hivemind module that caused it.

Run as a script (an audit hook cannot be removed, so it gets its own process):
    python tests/audit_session.py RESULTS_DIR OUT.json
It builds a small analysed run (tests/synthetic_run.py), then runs the commands that write through
`hivemind.cli.main`, in this process, and writes what it saw to OUT.json: the events, the commands' exit codes
and the violations of the rule "only hivemind.results.folder puts files into the results folder" (others may
write only inside a staging folder it handed out, the store only its SQLite file, the lock only its lock file).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

results = Path(sys.argv[1]).resolve()
out_path = Path(sys.argv[2])
events: list[dict] = []


def caller() -> str:
    """The innermost hivemind module on the stack (the one that asked for the write)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("hivemind"):
            return name
        frame = frame.f_back
    return "?"


def under_results(path) -> Path | None:
    if isinstance(path, int) or path is None:
        return None
    try:
        resolved = Path(os.fsdecode(path)).resolve()
    except (TypeError, ValueError, OSError):
        return None
    return resolved if resolved == results or results in resolved.parents else None


def hook(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        wants_write = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (mode is None and isinstance(flags, int) and flags & WRITE_FLAGS)
        where = under_results(path) if wants_write else None
        if where is not None:
            events.append({"event": "write", "path": str(where.relative_to(results)), "by": caller()})
    elif event == "os.rename":
        where = under_results(args[1])
        if where is not None:
            events.append({"event": "rename", "path": str(where.relative_to(results)), "by": caller()})
    elif event == "sqlite3.connect":
        where = under_results(args[0])
        if where is not None:
            events.append({"event": "sqlite", "path": str(where.relative_to(results)), "by": caller()})


def violation(e: dict) -> str | None:
    parts = Path(e["path"]).parts
    staged = any(p.startswith(".staging-") for p in parts)
    if e["event"] == "rename":    # into a staging folder: a library finishing its own file there (Inspect's logs)
        ok = e["by"] == "hivemind.results.folder" or staged
        return None if ok else f"{e['by']} renamed a file into {e['path']}"
    if e["event"] == "sqlite":
        return None if e["by"].startswith("hivemind.store") else f"{e['by']} opened SQLite file {e['path']}"
    if staged:
        return None                                   # a staging folder handed out by hivemind.results.folder
    if parts[-1] == ".lock":
        return None if e["by"] == "hivemind.core.lock" else f"{e['by']} wrote the lock file {e['path']}"
    if parts[-1].startswith("store.sqlite"):
        return None if e["by"].startswith("hivemind.store") else f"{e['by']} wrote the store {e['path']}"
    if ".work" in parts or any(p.startswith(".ray-") for p in parts):
        return None if e["by"] == "hivemind.results.folder" else f"{e['by']} wrote work file {e['path']}"
    return f"{e['by']} wrote {e['path']} outside a staging folder"


def build_run():
    import numpy as np
    from synthetic_run import Answer, make_run

    from hivemind.store import Prompt

    rng = np.random.default_rng(0)
    prompts = [Prompt(f"p{i}", f"Write something about topic number {i}.", "creative" if i % 2 else "advice")
               for i in range(4)]
    answers = [Answer(system, p.id, k, f"{system} says {k} about {p.id}: " + " ".join(["words"] * (5 + k)),
                      rng.normal(size=16)) for system in ("alpha", "beta", "gamma") for p in prompts for k in range(3)]
    return make_run(results, ["alpha", "beta", "gamma"], prompts, answers, samples=3, name="audited")


def main() -> None:
    sys.addaudithook(hook)
    from hivemind.cli import main as cli

    config = build_run()
    run = str(config.run_dir)
    snapshot = results / "snapshots" / "audited-snap"
    commands = [
        ["analyze", run, "-q"],
        ["report", run, "-q"],
        ["clusters", run, "--prompt", "p1", "-k", "2"],
        ["categories", run, "--min-prompts", "1"],
        ["export", "inspect", run],
        ["snapshot", "create", run, "--name", "audited-snap", "--results", str(results)],
        ["leaderboard", "update", "--results", str(results)],
        ["import", str(snapshot), "--name", "reimported", "--results", str(results)],
        ["merge", run, str(results / "reimported")],
    ]
    codes = []
    for command in commands:
        try:
            codes.append([command[0], cli(command)])
        except SystemExit as stop:       # argparse errors
            codes.append([command[0], stop.code])
    problems = [v for v in map(violation, events) if v]
    out_path.write_text(json.dumps({"codes": codes, "events": events, "violations": problems}, indent=1))


if __name__ == "__main__":
    main()
