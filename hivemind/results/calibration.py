"""Pinned calibrations: the lines a system's own figures are measured against, fixed per (embedder, equivalence,
prompt set), so that adding or removing other systems never moves a system's own numbers.

Three numbers are calibrated from answers rather than configured: the floor (mean cosine of answers to
different prompts; every rescaled value and calibrated line uses it), the idea line (same-idea cosine, derived
from the floor) and the relevance line (the quality gate's percentile of cosines to other prompts). Measured
from whichever systems a run holds, they would make gemma's distinct ideas depend on who else was analysed
beside it. So they are measured once, from a declared reference (`calibration_reference:` in the config;
absent, the systems of the first analysis that needs the record), and pinned here:

    <results>/.calibrations/<prompt set>-<key hash>.json

Every run with the same key (embedder id, equivalence id, prompt-set hash) reuses the record; `hivemind analyze
RUN --recalibrate` measures it again from the reference. The record travels in analysis.json, results.json
and snapshots (importing a snapshot pins the record it carries, unless one is pinned already).

Only this module reads and writes the folder, through the results folder's one write path
(hivemind.results.folder): staged, scanned, renamed into place.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterator

from hivemind.core.errors import HivemindError
from hivemind.core.layout import CALIBRATIONS, results_root
from hivemind.results.folder import folder_locked, write_text

VERSION = 1
DEFAULT_EQUIVALENCE = "embedding"     # answers are the same idea when their embeddings are close


def equivalence_id(config) -> str:
    """The config's equivalence (what makes two answers the same idea) as an id; embedding closeness when the
    config names none."""
    return str(getattr(getattr(config, "equivalence", None), "id", None) or DEFAULT_EQUIVALENCE)


@dataclass(frozen=True)
class CalibrationKey:
    """What a calibration is valid for: runs equal in all three share one."""
    embedder: str
    equivalence: str
    prompt_set: str

    @property
    def file_name(self) -> str:
        """<first 12 of the prompt-set hash>-<12 of a hash of the whole key>.json: plain characters only."""
        blob = json.dumps([self.embedder, self.equivalence, self.prompt_set]).encode("utf-8")
        return f"{self.prompt_set[:12]}-{hashlib.sha256(blob).hexdigest()[:12]}.json"


@dataclass
class Calibration:
    """One pinned calibration and where it came from."""
    embedder: str
    equivalence: str
    prompt_set: str
    floor: float | None                 # mean cosine of the reference's answers to different prompts
    relevance_line: float | None        # the quality gate's relevance line (hivemind.analyze.quality_gate)
    idea_line: float | None             # the same-idea cosine derived from the floor when it was computed
    reference: list[str]                # the reference systems' names
    reference_ids: list[str]            # and identities (what the store keys their answers by)
    n_answers: int                      # the reference's real answers it was measured on
    seed: int                           # the seed of the relevance line's random draw
    computed_at: str
    no_line_reason: str | None = None   # why relevance_line is None, in words
    version: int = VERSION
    notes: list[str] = field(default_factory=list)    # e.g. "imported from snapshot NAME"

    @property
    def key(self) -> CalibrationKey:
        return CalibrationKey(self.embedder, self.equivalence, self.prompt_set)

    @property
    def complete(self) -> bool:
        """Both lines defined: only such a record is pinned (one without, e.g. before the prompts were embedded,
        is used for the analysis at hand and measured again next time)."""
        return self.floor is not None and self.relevance_line is not None

    def to_dict(self) -> dict:
        return {**asdict(self), "file": self.key.file_name}

    @classmethod
    def from_dict(cls, data: dict, where: str) -> Calibration:
        """A record as written by to_dict; a HivemindError naming `where` when it is not one."""
        names = {f.name for f in fields(cls)}
        try:
            record = cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as err:
            raise HivemindError(f"{where}: not a calibration record ({err}); remove it or run `hivemind analyze "
                                f"RUN --recalibrate`") from None
        for name in ("floor", "relevance_line", "idea_line"):
            value = getattr(record, name)
            if value is not None and not isinstance(value, (int, float)):
                raise HivemindError(f"{where}: {name} is not a number; remove it or run `hivemind analyze RUN "
                                    f"--recalibrate`")
        return record


def calibrations_dir(results_dir: str | Path | None = None) -> Path:
    return results_root(results_dir) / CALIBRATIONS


def calibration_path(results_dir: str | Path | None, key: CalibrationKey) -> Path:
    return calibrations_dir(results_dir) / key.file_name


def read_calibration(results_dir: str | Path | None, key: CalibrationKey) -> Calibration | None:
    """The record pinned for `key`, or None. A record pinned for another key under the same name (a hash
    collision, or a hand-edited file) is refused rather than used."""
    path = calibration_path(results_dir, key)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HivemindError(f"{path}: unreadable calibration ({err}); remove it or run `hivemind analyze RUN "
                            f"--recalibrate`") from None
    if not isinstance(data, dict):
        raise HivemindError(f"{path}: not a calibration record; remove it or run `hivemind analyze RUN --recalibrate`")
    record = Calibration.from_dict(data, str(path))
    if record.key != key:
        raise HivemindError(f"{path}: pinned for {record.key}, not {key}; remove it or run `hivemind analyze RUN "
                            f"--recalibrate`")
    return record


def write_calibration(results_dir: str | Path | None, record: Calibration) -> Path:
    """Pin `record` (replacing the one of its key), atomically through the results folder's write path."""
    path = calibration_path(results_dir, record.key)
    return write_text(path, json.dumps(record.to_dict(), indent=2) + "\n")


@contextmanager
def calibrations_locked(results_dir: str | Path | None) -> Iterator[None]:
    """Read, compute and pin under the calibrations folder's lock (waiting for another analysis that holds it),
    so two analyses of comparable runs never pin two different records one after the other."""
    with folder_locked(calibrations_dir(results_dir), "calibrate", wait=True):
        yield


def pin_imported(results_dir: str | Path | None, data: dict | None, source: str) -> Path | None:
    """Pin the record a snapshot carries (analysis.json `calibration`) unless its key has one already: a
    snapshot imported beside runs of the same prompt set is then measured against the lines it was published
    with. None when the snapshot carries none (published before calibrations were pinned) or one is pinned."""
    if not isinstance(data, dict):
        return None
    record = Calibration.from_dict(data, source)
    if not record.complete:
        return None
    with calibrations_locked(results_dir):
        if read_calibration(results_dir, record.key) is not None:
            return None
        record.notes = [*record.notes, f"pinned on import of {source}"]
        return write_calibration(results_dir, record)
