"""Content fingerprints: one SHA-256 naming exactly what an analysis read, so no later command has to trust
file times to know whether the tables still describe the store.

The fingerprint of a run covers, in this fixed order:

1. the canonical config: the settings that change the tables (seed, samples, embedder id, near-duplicate
   threshold, each system's name, identity and model, each scorer's settings with secrets scrubbed). Not
   the run's name, results folder, prompt file path, retry, timeout or cost settings: they change no number;
2. the prompts (id, text, category) in store order: what was asked;
3. the answers of the config's systems (system id, prompt id, sample, text hash, error), by key: what was
   answered, including permanent failures. Texts enter by their SHA-256 (the store's text_hash);
4. the vectors of the config's embedder for those answer texts and for the prompt texts (text hash and the
   float32 bytes), by hash: what was measured;
5. the scores of those answers by the config's scorers (key, scorer, score, error): what gated them.

Left out on purpose: timestamps, latencies, costs and token counts (they change no table), the synthetic
control systems `analyze --controls` adds to the store (derived from the answers above, never ranked),
scores by scorers the config does not name (analyze never reads them), and chunk counts (read by `embed`'s
coverage table, not by analyze).

The rows are streamed from SQLite in key order (Store.iter_fingerprint_rows), so 100k answers need no
more memory than one row, and equal content gives an equal fingerprint whatever order it was stored in.

Who writes and reads it:
- analyze records the store's fingerprint in analysis.json (`fingerprint`);
- report records which analysis it drew (report.json: the analysis' fingerprint and its file hash);
- snapshot publish recomputes it under the run lock and refuses when it differs from the analysis';
- list, the leaderboard and `leaderboard add` tell a current analysis from a stale or refused one.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from hivemind.core.errors import HivemindError
from hivemind.results.folder import ANALYSIS, REPORT_RECORD, RESULTS

VERSION = "hivemind-fingerprint/1"


# Computing ----------------------------------------------------------------------------------------------

def prompt_set_hash(prompts) -> str:
    """sha256 over the prompts' ids and texts, in order: runs with equal hashes asked the same questions."""
    blob = json.dumps([[p.id, p.text] for p in prompts], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def canonical_config(config) -> dict:
    """The settings of `config` that change the analysed tables, as plain data with no secret values."""
    from hivemind.core.secrets import scrub

    return {
        "seed": config.seed,
        "samples": config.samples,
        "embedder": config.embedder.id,
        "near_duplicate_threshold": config.near_duplicate_threshold,
        "systems": [{"name": s.name, "identity": s.identity, "model": s.model} for s in config.systems],
        "scorers": [scrub(s.model_dump(mode="json", exclude_none=True)) for s in config.scorers],
    }


def _field(value) -> bytes:
    """One value, typed and length-prefixed, so that no two different rows encode to the same bytes."""
    if value is None:
        return b"N"
    if isinstance(value, bytes):
        return b"B%d:" % len(value) + value
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):
        return b"I%d;" % value
    if isinstance(value, float):
        return b"R" + struct.pack(">d", value)
    data = str(value).encode("utf-8")
    return b"S%d:" % len(data) + data


def store_fingerprint(store, config) -> str:
    """The fingerprint of `config` over an open store (see the module docstring for what it covers).

    Reads only; call it inside a read transaction when what is exported next must match it exactly."""
    digest = hashlib.sha256()
    digest.update(VERSION.encode() + b"\n")
    digest.update(json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":")).encode() + b"\n")
    ids = [s.identity for s in config.systems]
    scorers = [s.name for s in config.scorers]
    for section, row in store.iter_fingerprint_rows(config.embedder.id, ids, scorers):
        digest.update(section.encode())
        for value in row:
            digest.update(_field(value))
        digest.update(b"\n")
    return digest.hexdigest()


def run_fingerprint(config) -> str:
    """The fingerprint of the run's store as it is now (opened read-only: safe beside a collect)."""
    from hivemind.store import Store

    with Store.open_readonly(config.store_path) as store:
        return store_fingerprint(store, config)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Reading what analyze and report recorded ----------------------------------------------------------------

@dataclass
class Analysis:
    """What a run folder says about its last analysis."""
    fingerprint: str | None       # None: written by a hivemind that recorded none
    created_at: str
    complete: bool                # analyze finished: every table is there and results.json belongs to it
    why_incomplete: str = ""
    systems: list[str] = field(default_factory=list)     # the systems it analysed, by name


def read_analysis(run_dir: Path) -> Analysis | None:
    """The last analysis of a run folder; None when there is none.

    An analysis is complete only when analyze got to its end: every table analysis.json lists (`tables`)
    is in the folder, and results.json, where there is one,
    carries the same creation time (it is written after the tables passed the secret check). A refused
    analysis lands nothing (hivemind.results.folder scans before renaming), so it never counts as analysed;
    a set left incomplete some other way (files removed by hand) does not count either."""
    path = Path(run_dir) / ANALYSIS
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return Analysis(None, "", False, f"{ANALYSIS} is unreadable")
    if not isinstance(info, dict):
        return Analysis(None, "", False, f"{ANALYSIS} is not a JSON object")
    systems = info.get("systems") if isinstance(info.get("systems"), list) else []
    record = Analysis(fingerprint=info.get("fingerprint"), created_at=str(info.get("created_at", "")), complete=True,
                      systems=[str(s) for s in systems])
    # An older analysis.json lists no tables: nothing to hold it to but results.json below.
    listed = info.get("tables") if isinstance(info.get("tables"), list) else []
    missing = [name for name in listed if not (Path(run_dir) / str(name)).is_file()]
    if missing:
        record.complete, record.why_incomplete = False, f"{', '.join(missing[:3])} missing (a refused or broken analysis)"
        return record
    if not (Path(run_dir) / RESULTS).is_file():
        return record
    try:
        written = json.loads((Path(run_dir) / RESULTS).read_text(encoding="utf-8")).get("created_at")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        written = None
    if written != record.created_at:
        record.complete = False
        record.why_incomplete = f"{RESULTS} does not belong to this analysis (a refused or interrupted analysis)"
    return record


def analysis_file_hash(run_dir: Path) -> str | None:
    path = Path(run_dir) / ANALYSIS
    return file_sha256(path) if path.is_file() else None


def report_record(run_dir: Path) -> dict:
    """What report.json says the report drew ({} when there is none or it is unreadable)."""
    try:
        data = json.loads((Path(run_dir) / REPORT_RECORD).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def report_is_current(run_dir: Path) -> bool:
    """Did the report draw the analysis now in the folder (same analysis.json, byte for byte)?"""
    drawn = report_record(run_dir).get("analysis_sha256")
    return drawn is not None and drawn == analysis_file_hash(run_dir)


def report_info(run_dir: Path) -> dict:
    """The body of report.json for a report drawn now from the run folder's analysis."""
    from hivemind.store import now

    path = Path(run_dir) / ANALYSIS
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        info = {}
    return {"format": VERSION, "created_at": now(), "analysis_fingerprint": info.get("fingerprint"),
            "analysis_created_at": info.get("created_at"), "analysis_sha256": analysis_file_hash(run_dir)}


# The one check every command that must not contradict the store uses ---------------------------------------

def stale_message(config, current: str, analysis: Analysis | None) -> str | None:
    """None when the analysis describes the store as it is (fingerprint `current`); else why, in one line
    naming the next commands."""
    run = config.name
    again = f"run `hivemind analyze {run}` then `hivemind report {run}`"
    if analysis is None:
        return f"run {run!r} was never analysed; {again}"
    if not analysis.complete:
        return f"the last analysis of run {run!r} did not finish ({analysis.why_incomplete}); {again}"
    if analysis.fingerprint is None:
        return (f"the analysis of run {run!r} records no content fingerprint (an older hivemind wrote it), so "
                f"it cannot be shown to match the store; {again}")
    if analysis.fingerprint != current:
        return (f"the store of run {run!r} changed since its analysis (its answers, vectors, scores, prompts "
                f"or result-changing settings differ from what the tables were built on); {again}")
    return None


def require_current(config, store=None) -> str:
    """The fingerprint of the run, or a HivemindError when its analysis does not describe the store."""
    current = store_fingerprint(store, config) if store is not None else run_fingerprint(config)
    problem = stale_message(config, current, read_analysis(config.run_dir))
    if problem:
        raise HivemindError(problem)
    return current
