"""SIGINT, SIGTERM and SIGHUP as an orderly stop: `Interrupted(signum)`, raised where the work is.

In synchronous code the handler raises at once, so every `finally` and `with` runs (local servers stopped,
store closed, lock released). Inside the collector's event loop raising from a signal handler would tear
through asyncio's bookkeeping (tasks destroyed while pending, tracebacks at exit), so `run_async` instead
cancels the main task - each in-flight request unwinds through its own `finally` - and raises Interrupted
once the loop has closed. The CLI turns it into exit code 128 + signum (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
"""
from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
HANDLED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A signal stopped the pipeline. A KeyboardInterrupt, so no `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum   # the shell's convention

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


_depth = 0
_fired: list[int] = []
_deferring = 0              # inside `deferred()`: a signal is noted, and raised when the block ends
_pending: list[int] = []


def _handler(signum, _frame) -> None:
    if _fired:
        return   # already stopping: let the cleanup finish
    if _deferring:
        _pending.append(signum)
        return
    _fired.append(signum)
    raise Interrupted(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """Within signals_handled(): a signal that arrives in this block is raised as Interrupted when the block
    ends, not in its middle (hivemind.results.folder renames a set of files into place in one). Python runs
    signal handlers in the main thread whichever thread the signal hit, so this holds in threaded processes
    too, where blocking the signal in one thread would not."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending and not _fired:
            signum = _pending[0]
            _pending.clear()
            _fired.append(signum)
            raise Interrupted(signum)


@contextmanager
def signals_handled() -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM/SIGHUP raise Interrupted(signum) in the main thread.

    Only the first signal raises: further ones while the cleanup runs are ignored, so stopping the local
    servers and closing the store are not cut short. Nested blocks share the outer one; outside the main
    thread (signals cannot be caught there) this does nothing."""
    global _depth
    if _depth or threading.current_thread() is not threading.main_thread():
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    previous = {sig: signal.signal(sig, _handler) for sig in HANDLED_SIGNALS}
    _fired.clear()
    _pending.clear()
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main); inside signals_handled, a signal cancels `main` and then raises Interrupted."""
    if not _depth or threading.current_thread() is not threading.main_thread():
        return asyncio.run(main)

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def stop(signum: int) -> None:
            if not _fired:
                _fired.append(signum)
                task.cancel()

        for sig in HANDLED_SIGNALS:
            loop.add_signal_handler(sig, stop, sig)
        try:
            return await main
        finally:
            for sig in HANDLED_SIGNALS:
                loop.remove_signal_handler(sig)
                signal.signal(sig, _handler)   # remove_signal_handler resets to the default: ours again

    try:
        result = asyncio.run(guarded())
    except asyncio.CancelledError:
        if _fired:
            raise Interrupted(_fired[0]) from None
        raise
    if _fired:   # the signal came as `main` was finishing: still a stop
        raise Interrupted(_fired[0])
    return result
