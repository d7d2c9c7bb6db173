"""Store errors as one HivemindError each, naming the file and what to do.

Every SQLite and file-system error met by a store becomes one HivemindError here. SQLite's primary result
code (the low byte of sqlite_errorcode) tells the cases apart; the message text is the fallback for errors
raised without a code.
"""
from __future__ import annotations

import errno
import functools
import inspect
import os
import sqlite3
from pathlib import Path

from hivemind.core.errors import HivemindError

SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26
LOCK_TIMEOUT_S = 30.0
KEYS_PER_QUERY = 300          # 3 bound values per key stays under SQLite's oldest limit of 999 variables
RESTORE = ("keep the damaged file aside, then restore the run from a snapshot (`hivemind import "
           "results/snapshots/NAME --name RUN`) or collect it again under a new run name")


def store_error(err: BaseException, path: Path, timeout: float = LOCK_TIMEOUT_S) -> HivemindError | None:
    """The user-facing error for a failed store operation; None when `err` is no store problem (a bug)."""
    if isinstance(err, OSError):
        return file_error(err, "write there", path)
    if not isinstance(err, sqlite3.Error):
        return None
    code = (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(err)
    if code in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in text:
        return HivemindError(f"{path}: the store stayed locked by another process for {timeout:g} s ({text}); "
                             "wait for the other hivemind command on this run to finish (or stop it) and run "
                             "again; nothing was lost")
    if code in (SQLITE_READONLY, SQLITE_PERM) or "readonly" in text:
        return HivemindError(f"{path}: cannot write to the store: {read_only_reason(path)}. Nothing was lost, the "
                             "store is as it was; make it writable (chmod u+w, or remount read-write) and run "
                             "again, or copy the run folder somewhere writable and set results_dir to it")
    if code == SQLITE_FULL or "database or disk is full" in text:
        return HivemindError(f"{path}: the disk is full ({text}); free some space and run again; "
                             "everything committed before is kept")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
        return HivemindError(f"{path}: unreadable store ({text}): the file is damaged or is not a hivemind "
                             f"store; {RESTORE}")
    if code in (SQLITE_CANTOPEN, SQLITE_IOERR) or "unable to open" in text or "disk I/O error" in text:
        if path.is_dir():
            return HivemindError(f"{path}: is a folder, not a store file; move it away and run again")
        reason = read_only_reason(path)
        if reason:
            return HivemindError(f"{path}: cannot open the store: {reason}. Nothing was lost; make it "
                                 "writable (chmod u+w, or remount read-write) or copy the run folder somewhere "
                                 "writable and set results_dir to it")
        return HivemindError(f"{path}: cannot read the store ({text}); check that the disk is healthy and "
                             f"nothing else moved or truncated the file; if it persists, {RESTORE}")
    if "no such table" in text or "no such column" in text:
        return HivemindError(f"{path}: not a hivemind store ({text}); {RESTORE}")
    return None


def read_only_reason(path: Path) -> str:
    """Why `path` cannot be written, in words; "" when nothing visible stops it."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if os.statvfs(probe).f_flag & os.ST_RDONLY:
            return f"the file system holding {probe} is mounted read-only"
    except OSError:
        pass
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is read-only (permission denied)"
    folder = path.parent
    if folder.is_dir() and not os.access(folder, os.W_OK):
        return (f"permission denied in the folder {folder} (SQLite writes {path.name}-wal and "
                f"{path.name}-shm beside the store)")
    return ""


def file_error(err: OSError, doing: str, path: Path | None = None) -> HivemindError:
    """An OSError met while `doing` something to results files, as a message that says what it was.

    Callers write through temporary files renamed into place, so a failure leaves the previous files."""
    where = Path(err.filename) if err.filename else path
    if isinstance(err, (FileExistsError, NotADirectoryError)) and where is not None:
        conflict = folder_conflict(where)
        if conflict is not None:
            return conflict
    if err.errno == errno.EROFS:
        why = "the file system is mounted read-only"
    elif err.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    elif err.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full"
    else:
        why = err.strerror or type(err).__name__
    return HivemindError(f"{where}: cannot {doing}: {why}. Nothing was lost: the files already there are as "
                         "they were; make the folder writable, free space, or choose another results_dir, "
                         "and run again")


def folder_conflict(folder: Path) -> HivemindError | None:
    """The error when a file sits where `folder` or a folder above it should be (None when none does)."""
    folder = Path(folder)
    for candidate in [*reversed(folder.parents), folder]:
        if candidate.exists() and not candidate.is_dir():
            return HivemindError(f"{candidate}: is a file, but hivemind needs a folder there; "
                                 "move the file away or choose another results_dir")
    return None


def check_folder(folder: str | Path) -> Path:
    """`folder` and every folder above it must be folders or not exist yet; returns `folder`."""
    conflict = folder_conflict(Path(folder))
    if conflict is not None:
        raise conflict
    return Path(folder)


def _converted(err: Exception, path: Path, timeout: float) -> HivemindError | None:
    """pandas wraps SQLite errors in its own DatabaseError (an OSError without errno; the original is the
    cause), so the SQLite error is looked for first."""
    if isinstance(err, HivemindError):
        return None
    for candidate in (err, err.__cause__):
        if isinstance(candidate, sqlite3.Error):
            return store_error(candidate, path, timeout)
    if isinstance(err, OSError) and err.errno is not None:
        return store_error(err, path, timeout)
    return None


def _guard(method):
    """Turn store errors raised inside `method` into HivemindErrors; a generator is guarded while it is
    iterated, since SQLite reports a damaged page only when the cursor reaches it."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def guarded_generator(self, *args, **kwargs):
            try:
                yield from method(self, *args, **kwargs)
            except Exception as err:
                converted = _converted(err, self.path, self.timeout)
                if converted is None:
                    raise
                raise converted from None
        return guarded_generator

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as err:
            converted = _converted(err, self.path, self.timeout)
            if converted is None:
                raise
            raise converted from None
    return guarded


def guard_public_methods(cls):
    """Every public method of the store, including ones added later, goes through _guard."""
    for name, value in list(vars(cls).items()):
        if inspect.isfunction(value) and not name.startswith("_") and name not in ("close", "transaction"):
            setattr(cls, name, _guard(value))
    return cls

