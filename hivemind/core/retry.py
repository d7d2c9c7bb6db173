"""Retrying provider calls: which errors heal, how long to wait, and when to give up.

Shared by the collector and the embedding API path. We do our own retries (litellm's and the OpenAI
client's are switched off per call) so that every attempt is counted, backoff honours Retry-After, and a
permanent error is never paid for twice.
"""
from __future__ import annotations

import asyncio
import random
import socket
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")

# Statuses that will not heal by asking again: bad request (incl. context too long), auth, forbidden,
# not found, unprocessable.
PERMANENT_STATUSES = {400, 401, 403, 404, 413, 422}
# Of those, the ones that are about the system (key, model name), not the one prompt: stop the system.
SYSTEM_FATAL_STATUSES = {401, 403, 404}


class PermanentError(Exception):
    def __init__(self, message: str, status: int | None):
        super().__init__(message)
        self.status = status

    @property
    def fatal_for_system(self) -> bool:
        return self.status in SYSTEM_FATAL_STATUSES


class GaveUp(Exception):
    """A transient error persisted through every attempt."""


class Unreachable(GaveUp):
    """The endpoint never answered: every attempt was refused or its host name did not resolve."""


# Seconds of nothing but refused connections / failed name lookups, with no answer ever, before an
# endpoint is given up. A refusal is instant, so waiting longer only delays the bad news: a server that
# is not running will not start by itself, and a misspelt host will not appear.
UNREACHABLE_WINDOW = 10.0
# While an endpoint has never answered, a refused attempt is retried after at most this long.
UNREACHABLE_MAX_DELAY = 2.0

# How the OS words the two failures, for errors whose chain lost the original exception type.
_UNREACHABLE_TEXTS = ("connection refused", "[errno 111]", "name or service not known",
                      "nodename nor servname", "temporary failure in name resolution", "getaddrinfo failed",
                      "no address associated with hostname", "failed to resolve", "[errno -2]", "[errno -3]",
                      "[errno -5]", "[errno 8]")


def unreachable_cause(err: BaseException) -> str | None:
    """The refused connection or failed name lookup behind an error, in the OS's words; None if neither.

    Searched through the whole exception chain: litellm wraps the openai error (which it even labels a 500),
    which wraps the httpx/aiohttp error, which wraps the socket error. The socket error's type decides;
    the OS's wording is the fallback for chains that lost it."""
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    for link in chain:
        if isinstance(link, ConnectionRefusedError):
            return f"Connection refused ({link})"
        if isinstance(link, socket.gaierror):
            return f"Host name lookup failed ({link})"
    for link in chain:
        text = str(link)
        if any(marker in text.lower() for marker in _UNREACHABLE_TEXTS):
            return text.strip().splitlines()[0][:200]
    return None


def is_unreachable(err: BaseException) -> bool:
    """Connection refused or a host name that does not resolve: nothing at that address will answer."""
    return unreachable_cause(err) is not None


@dataclass
class Reachability:
    """Whether one endpoint has ever answered, shared by all requests to it.

    An endpoint that refused every attempt (or whose name never resolved) for `window` seconds, and has
    never answered, is given up (Unreachable) instead of being retried with growing backoff; so is one
    whose first sample ran out of attempts that way. Once it has answered anything - even an HTTP error -
    refusals are ordinary transient errors again (a server restarting mid-run)."""
    window: float = UNREACHABLE_WINDOW
    answered: bool = False
    first_refusal: float | None = None

    def note_answer(self) -> None:
        self.answered = True

    def hopeless(self, err: BaseException, last_attempt: bool) -> bool:
        if not is_unreachable(err):
            if status_of(err) is not None:
                self.answered = True   # an HTTP error is an answer: something is listening there
            return False
        if self.answered:
            return False
        now = time.monotonic()
        if self.first_refusal is None:
            self.first_refusal = now
        return last_attempt or now - self.first_refusal >= self.window

    def cap_delay(self, err: BaseException, delay: float) -> float:
        if not self.answered and is_unreachable(err):
            return min(delay, UNREACHABLE_MAX_DELAY)
        return delay


@dataclass
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        # Full jitter (AWS architecture blog): spreads retries of many workers apart.
        backoff = rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** attempt))
        if retry_after is not None:
            return min(self.max_delay, max(retry_after, backoff))
        return backoff


def status_of(err: BaseException) -> int | None:
    status = getattr(err, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def retry_after_of(err: BaseException) -> float | None:
    """Seconds from a Retry-After header, wherever litellm left the headers."""
    headers = None
    response = getattr(err, "response", None)
    if response is not None:
        headers = getattr(response, "headers", None)
    headers = headers or getattr(err, "litellm_response_headers", None) or getattr(err, "headers", None)
    if not headers:
        return None
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def is_permanent(err: BaseException) -> bool:
    import litellm

    if isinstance(err, litellm.ContextWindowExceededError):
        return True
    return status_of(err) in PERMANENT_STATUSES


def describe(err: BaseException) -> str:
    status = status_of(err)
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    prefix = f"{status} " if status else ""
    return f"{prefix}{type(err).__name__}: {text}"[:500]


async def call_with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy, rng: random.Random,
                            on_retry: Callable[[BaseException], None] | None = None,
                            reach: Reachability | None = None) -> T:
    """Run `call` until it succeeds, raises a permanent error, or runs out of attempts.

    With `reach` (one per endpoint), an endpoint that never answered is given up early: Unreachable."""
    for attempt in range(policy.max_attempts):
        try:
            result = await call()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # provider SDKs raise many types; classify by status
            if is_permanent(err):
                raise PermanentError(describe(err), status_of(err)) from err
            last = attempt + 1 == policy.max_attempts
            if reach is not None and reach.hopeless(err, last):
                raise Unreachable(unreachable_cause(err) or describe(err)) from err
            if last:
                raise GaveUp(f"after {policy.max_attempts} attempts: {describe(err)}") from err
            if on_retry is not None:
                on_retry(err)
            delay = policy.delay(attempt, retry_after_of(err), rng)
            await asyncio.sleep(reach.cap_delay(err, delay) if reach is not None else delay)
        else:
            if reach is not None:
                reach.note_answer()
            return result
    raise AssertionError("unreachable")
