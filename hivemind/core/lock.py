"""The run lock: one writer per run folder at a time (collect, embed, score, analyze, report).

Two collectors on one run would ask the provider for the same samples twice (and pay twice), so every
stage that writes takes `results/<run>/.lock` first. The lock itself is `fcntl.flock` on that file: the
kernel releases it the moment its holder dies, even under SIGKILL, so a killed collector never leaves the
run locked. The file's body (JSON) names the holder - pid, process start time, command, stage, since
when - so a refused writer can say who holds the run.

The body is also a second check. Some filesystems accept flock without enforcing it, and systems without
fcntl have no flock at all; there a body naming a process that is still running (same pid *and* same start
time, read from /proc/<pid>/stat, so a recycled pid is not mistaken for the holder; where there is no
/proc, the pid alone) counts as held. A body naming a process that is gone is a stale lock: it is taken
over, with a note.

The lock file is never deleted: unlinking it would let a waiter lock the old inode while a newcomer
locks a new file, and both would think they hold the run. Released means "unlocked, empty body".

Within one process the lock is re-entrant (`hivemind run` holds it across its stages, and each stage
takes it again), counted per lock file.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hivemind.core.errors import HivemindError

try:
    import fcntl
except ImportError:  # not POSIX: only the body check below protects the run
    fcntl = None

LOCK_NAME = ".lock"
POLL_SECONDS = 0.2


@dataclass
class Holder:
    pid: int
    start_time: str | None     # /proc/<pid>/stat field 22 (clock ticks since boot); None without /proc
    host: str
    command: str
    stage: str
    since: str                 # UTC, ISO 8601

    def describe(self) -> str:
        return f"pid {self.pid} (`{self.command}`, stage {self.stage}) since {self.since}"


def process_start_time(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot (Linux), or None when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (the command name) is in parentheses and may contain spaces: split after the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None  # field 22 overall; this list starts at field 3


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True   # exists, owned by someone else
    except OSError:
        return False
    return True


def holder_running(holder: Holder) -> bool:
    """Is the process a lock body names still the one that wrote it?"""
    if holder.host != socket.gethostname():
        return False  # flock is the only judge across hosts; a body from elsewhere proves nothing here
    if holder.pid == os.getpid() or not pid_alive(holder.pid):
        return False
    now = process_start_time(holder.pid)
    if now is not None and holder.start_time is not None:
        return now == holder.start_time   # a different start time: the pid was recycled
    return True


def this_process(stage: str) -> Holder:
    return Holder(pid=os.getpid(), start_time=process_start_time(os.getpid()), host=socket.gethostname(),
                  command=_command_line(), stage=stage,
                  since=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _command_line() -> str:
    argv = list(sys.argv)
    if argv and (argv[0].endswith(("hivemind", "cli/__main__.py", "cli.py")) or argv[0] == "-m"):
        argv[0] = "hivemind"
    return " ".join(argv)[:300] or "python"


class RunLock:
    """`with RunLock(run_dir, "collect", wait=False):` - refuses (HivemindError) or waits if held."""

    _held: dict[str, "RunLock"] = {}   # lock path -> the lock this process holds on it

    def __init__(self, run_dir: str | Path, stage: str, wait: bool = False, run_name: str | None = None,
                 notify=None):
        self.path = Path(run_dir) / LOCK_NAME
        self.stage = stage
        self.wait = wait
        self.run_name = run_name or Path(run_dir).name
        self.notify = notify or (lambda text: print(text, file=sys.stderr, flush=True))
        self.fd: int | None = None
        self.depth = 0
        self.holder: Holder | None = None

    # Re-entrant use: the outermost `with` locks, inner ones only update the stage in the body.
    def __enter__(self) -> "RunLock":
        key = str(self.path.resolve())
        outer = RunLock._held.get(key)
        if outer is not None:
            outer.depth += 1
            self._outer = outer
            outer.set_stage(self.stage)
            return self
        self._outer = None
        self.acquire()
        self.depth = 1
        RunLock._held[key] = self
        return self

    def __exit__(self, *exc) -> None:
        if self._outer is not None:
            self._outer.depth -= 1
            return
        RunLock._held.pop(str(self.path.resolve()), None)
        self.release()

    # The lock itself -------------------------------------------------------------------------------
    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            reason = {errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                      errno.EPERM: "permission denied"}.get(err.errno, err.strerror or str(err))
            raise HivemindError(f"{self.path}: cannot write the lock file of run {self.run_name!r} ({reason}). "
                                f"Nothing was lost: the store and tables are as they were. Stages that write need a writable results folder: check its permissions, "
                                f"or copy the run to a writable place (--results / results_dir)") from None
        said_waiting = False
        try:
            while True:
                holder = self._try_lock(fd)
                if holder is None:
                    break
                if not self.wait:
                    raise HivemindError(
                        f"run {self.run_name!r} is busy: {holder.describe()} holds its lock ({self.path}). "
                        f"Wait for it to finish, or pass --wait to start when it is done; if that process is "
                        f"stuck, stop it (kill {holder.pid}).")
                if not said_waiting:
                    self.notify(f"waiting for run {self.run_name!r}: {holder.describe()} holds its lock")
                    said_waiting = True
                time.sleep(POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self._write(this_process(self.stage))

    def _try_lock(self, fd: int) -> Holder | None:
        """Lock fd if the run is free; else return who holds it."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return self._holder_of_locked(fd)
            except OSError:
                pass  # this filesystem has no flock: the body below is all there is
        previous = self._read(fd)
        if previous is not None and holder_running(previous):
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            return previous
        if previous is not None:
            self.notify(f"note: took over the lock of run {self.run_name!r} left by {previous.describe()}; "
                        f"that process is no longer running")
        return None

    def _holder_of_locked(self, fd: int) -> Holder:
        """The body of a held lock; its holder may be between locking and writing it, so look twice."""
        for _ in range(10):
            holder = self._read(fd)
            if holder is not None:
                return holder
            time.sleep(0.05)
        return Holder(0, None, "?", "unknown command", "unknown", "unknown time")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)   # empty body first: a reader never sees a free lock with a holder named
            if fcntl is not None:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
                except OSError:
                    pass
        finally:
            os.close(self.fd)
            self.fd = None

    def set_stage(self, stage: str) -> None:
        if self.fd is not None and self.holder is not None:
            self.holder.stage = stage
            self._write(self.holder)

    # The body ------------------------------------------------------------------------------------------
    def _write(self, holder: Holder) -> None:
        self.holder = holder
        data = json.dumps(asdict(holder)).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        os.fsync(self.fd)

    @staticmethod
    def _read(fd: int) -> Holder | None:
        try:
            raw = os.pread(fd, 65536, 0)
            data = json.loads(raw) if raw.strip() else None
            return Holder(**data) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError):
            return None   # empty or half-written body: nobody is named


def read_holder(run_dir: str | Path) -> Holder | None:
    """Who the lock file of a run names (None: nobody). For messages and tests; takes no lock."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return RunLock._read(fd)
    finally:
        os.close(fd)
