"""The results folder: where it is, what its files are called, and the one way any command writes there.

Layout (every file name is declared here once; other modules use these constants):

    <results>/                         results_root(): --results, else $HIVEMIND_RESULTS, else ./results
      leaderboard.csv, leaderboard.md  hivemind leaderboard
      snapshots/<name>/                hivemind snapshot create (immutable, hashed)
      <run>/                           one run (RunConfig.run_dir)
        config.yaml  store.sqlite      the run's config copy and its SQLite store (hivemind.store writes it)
        .lock                          the run lock (hivemind.core.lock)
        analysis.json  results.json    hivemind analyze (tables beside them: hivemind.results.contract.TABLES)
        report.html  report.md         hivemind report (figures beside them; report.json: which analysis it drew)
        inspect/                       hivemind export inspect

Every file a command keeps goes through `writing()` (files that belong together) or `write_text()` /
`write_bytes()` (one file), and nothing else in the package opens a file under the results folder for writing
(tests/test_results_folder.py checks the source and watches a whole session with an audit hook):

1. the files are written into a hidden staging folder inside the target folder (same file system, so the
   final rename is atomic: a reader sees the old file or the new one, never half of one);
2. the staged files are scanned for secrets (hivemind.core.secrets: key variables' values and key-shaped strings in
   plain text, Parquet, SQLite stores and compressed containers such as Inspect's `.eval` zips, decoded); a hit
   refuses the whole set and nothing lands;
3. only then is each file renamed into place.

The staging folder is removed on any exit: success, an error, Ctrl-C, SIGTERM or SIGHUP (hivemind.core.signals turns
those into an exception, so the `finally` runs). A staging folder left by a SIGKILLed process is removed by the
next write into that folder. `writing(..., lock=run_dir)` also holds the run lock (hivemind.core.lock), re-entrantly,
so a command that writes cannot interleave with another command on the same run.

Transient work files of a Ray job (shards under `<run>/.work/`) are written with `atomic_file()`: they are
read back into the store and removed, never kept.
"""
from __future__ import annotations

import json
import os
import secrets as _random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hivemind.core.errors import HivemindError
from hivemind.core.layout import (  # noqa: F401  (the layout,
    ANALYSIS,
    DEFAULT_ROOT,
    ENV_VAR,
    INSPECT_DIR,
    LEADERBOARD_CSV,
    LEADERBOARD_MD,  # named where files
    LOCK,
    REPORT_HTML,
    REPORT_MD,
    REPORT_RECORD,
    RESERVED,  # are written)
    RESULTS,
    RUN_CONFIG,
    SNAPSHOTS,
    STORE,
    WORK_DIR,
    default_root,
    results_root,
)

STAGING_PREFIX = ".staging-"


# Writing ------------------------------------------------------------------------------------------------
@dataclass
class Staged:
    """The files of one `writing()` block: write each under its name (a path relative to `folder`, which may
    have sub-folders); they land in `folder` together when the block ends without an error."""
    folder: Path
    staging: Path
    names: list[str] = field(default_factory=list)

    def path(self, name: str) -> Path:
        """A staged path for a writer that needs one (a figure, a library's log writer)."""
        target = self.staging / name
        if self.staging.resolve() not in target.resolve().parents:    # no "../" out of the staging folder
            raise HivemindError(f"{name!r}: not a file name inside {self.folder}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if name not in self.names:
            self.names.append(name)
        return target

    def final(self, name: str) -> Path:
        return self.folder / name

    @property
    def dir(self) -> Path:
        """The staging folder itself, for a writer that fills a folder (figures): every file in it lands."""
        return self.staging

    def text(self, name: str, text: str) -> Path:
        self.path(name).write_text(text, encoding="utf-8")
        return self.final(name)

    def bytes(self, name: str, data: bytes) -> Path:
        self.path(name).write_bytes(data)
        return self.final(name)

    def json(self, name: str, data: Any) -> Path:
        return self.text(name, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def csv(self, name: str, frame, index: bool = False) -> Path:
        frame.to_csv(self.path(name), index=index)
        return self.final(name)

    def parquet(self, name: str, frame) -> Path:
        """A pandas DataFrame or a pyarrow Table."""
        path = self.path(name)
        if hasattr(frame, "to_parquet"):
            frame.to_parquet(path, index=False)
        else:
            import pyarrow.parquet as pq

            pq.write_table(frame, path)
        return self.final(name)

    def figure(self, name: str, fig, **options) -> Path:
        fig.savefig(self.path(name), **options)
        return self.final(name)

    def with_writer(self, name: str, write: Callable[[Path], Any]) -> Path:
        """A file a library writes itself (`write(path)`), e.g. Inspect's `write_eval_log`."""
        write(self.path(name))
        return self.final(name)

    @property
    def written(self) -> list[Path]:
        """The final paths: the named writes, and after the block every file that landed."""
        return [self.final(name) for name in self.names]


@contextmanager
def writing(folder: str | Path, stage: str = "write", config=None, lock: str | Path | None = None,
            wait: bool = False, run_name: str | None = None) -> Iterator[Staged]:
    """Stage files for `folder`, scan them for secrets, then rename them into place (see the module docstring).

    `config` (a RunConfig) adds its key variables to the scan; `lock` (a run folder) holds that run's lock for
    the whole block. On any error nothing lands and the staging folder is removed."""
    from hivemind.core.lock import RunLock
    from hivemind.core.signals import signals_handled

    folder = Path(folder)
    with signals_handled():
        if lock is not None:
            with RunLock(lock, stage, wait=wait, run_name=run_name):
                with _staged(folder, config) as staged:
                    yield staged
        else:
            with _staged(folder, config) as staged:
                yield staged


@contextmanager
def _staged(folder: Path, config) -> Iterator[Staged]:
    staging = _new_staging(folder)
    try:
        staged = Staged(folder, staging)
        yield staged
        _publish(staged, config)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _new_staging(folder: Path) -> Path:
    from hivemind.store import check_folder, file_error

    try:
        check_folder(folder).mkdir(parents=True, exist_ok=True)
        _remove_abandoned(folder)
        staging = folder / f"{STAGING_PREFIX}{os.getpid()}-{_random.token_hex(4)}"
        staging.mkdir()
    except OSError as err:
        raise file_error(err, "write there", folder) from None
    return staging


def _remove_abandoned(folder: Path) -> None:
    """Staging folders of processes that no longer run (killed with SIGKILL mid-write)."""
    from hivemind.core.lock import pid_alive

    for leftover in folder.glob(f"{STAGING_PREFIX}*"):
        pid = leftover.name[len(STAGING_PREFIX):].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _publish(staged: Staged, config) -> None:
    from hivemind.core.signals import deferred
    from hivemind.results.scan import scan_paths
    from hivemind.store import file_error

    links = [p for p in staged.staging.rglob("*") if p.is_symlink()]
    if links:                               # the scan does not follow links: nothing unscanned may land
        raise HivemindError(f"{links[0]}: a link in the files to write; nothing was written")
    scan_paths([staged.staging], config)    # a hit raises: nothing is renamed, the staging is removed
    sources = sorted((p for p in staged.staging.rglob("*") if p.is_file()),
                     key=lambda p: (p.name in LAST, p.relative_to(staged.staging).as_posix()))
    try:
        with deferred():                    # a signal waits until all of them have landed
            for source in sources:
                name = source.relative_to(staged.staging).as_posix()
                target = staged.folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                if name not in staged.names:
                    staged.names.append(name)
    except OSError as err:
        raise file_error(err, "write there", staged.folder) from None


# Renamed last: the files that say a set is complete (an analysis, a report, the run's results), so a reader
# that sees a new one also sees the new files it describes.
LAST = {ANALYSIS, RESULTS, REPORT_RECORD, REPORT_HTML, LEADERBOARD_CSV}


@contextmanager
def run_locked(config, stage: str, wait: bool = False) -> Iterator[None]:
    """A command's whole read-compute-write under its run's lock, with SIGINT/SIGTERM/SIGHUP as an orderly
    stop: what every command that writes into a run holds (hivemind.pipeline.locked adds the stages' clean-up)."""
    with folder_locked(config.run_dir, stage, wait, config.name):
        yield


@contextmanager
def folder_locked(folder: str | Path, stage: str, wait: bool = False, name: str | None = None) -> Iterator[None]:
    """The lock of any folder under the results folder (a run, a calibration, the results folder itself for
    the leaderboard), re-entrant, with signals handled.

    A command that fails before writing anything leaves no trace: folders that only the lock created (the
    run folder, a new results folder above it) are removed again, so a bad name or a missing store does not
    leave a phantom run behind."""
    from hivemind.core.lock import RunLock
    from hivemind.core.signals import signals_handled

    folder = Path(folder)
    new = [f for f in (folder.parent, folder) if not f.exists()]
    try:
        with signals_handled(), RunLock(folder, stage, wait=wait, run_name=name):
            yield
    except BaseException:
        _remove_if_only_the_lock(new)
        raise


def _remove_if_only_the_lock(created: list[Path]) -> None:
    for folder in reversed(created):            # the inner folder first, then the one above it
        try:
            leftovers = [p.name for p in folder.iterdir()]
            if leftovers in ([], [LOCK]):
                for name in leftovers:
                    (folder / name).unlink()
                folder.rmdir()
        except OSError:
            return                              # not ours to clean, or already gone


def write_text(path: str | Path, text: str, config=None) -> Path:
    """One text file, staged, scanned and renamed into place."""
    path = Path(path)
    with writing(path.parent, config=config) as out:
        return out.text(path.name, text)


def write_bytes(path: str | Path, data: bytes, config=None) -> Path:
    path = Path(path)
    with writing(path.parent, config=config) as out:
        return out.bytes(path.name, data)


@contextmanager
def new_folder(target: str | Path, config=None, lock: str | Path | None = None, stage: str = "write",
               wait: bool = False, run_name: str | None = None) -> Iterator[Staged]:
    """A folder that must not exist yet (a snapshot, an imported run), built whole in a staging folder beside
    it, scanned, then renamed into place in one step: it appears complete or not at all."""
    from hivemind.core.lock import RunLock
    from hivemind.core.signals import signals_handled
    from hivemind.store import file_error

    target = Path(target)
    with signals_handled():
        lock_context = RunLock(lock, stage, wait=wait, run_name=run_name) if lock is not None else _nothing()
        with lock_context:
            if target.is_dir() and not any(target.iterdir()):
                target.rmdir()                  # an empty folder left by hand is no content to protect
            if target.exists():
                raise HivemindError(f"{target}: already exists; choose another name or remove it first")
            staging = _new_staging(target.parent)
            try:
                staged = Staged(target, staging)
                yield staged
                from hivemind.results.scan import scan_paths

                links = [p for p in staging.rglob("*") if p.is_symlink()]
                if links:
                    raise HivemindError(f"{links[0]}: a link in the files to write; nothing was written")
                scan_paths([staging], config)
                try:
                    os.rename(staging, target)      # one step: the folder appears whole
                except OSError as err:
                    raise file_error(err, "write there", target) from None
            finally:
                shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it when the block succeeds and removed otherwise: for the
    transient work files of a Ray job (its workers run in other processes, with no staging of their own)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_tree(folder: str | Path) -> None:
    """Remove a transient folder of the results folder (a finished Ray job's shards)."""
    shutil.rmtree(folder, ignore_errors=True)
