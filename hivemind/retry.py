"""Retrying provider calls: which errors heal, how long to wait, and when to give up.

Shared by the collector and the embedding API path. We do our own retries (litellm's and the OpenAI
client's are switched off per call) so that every attempt is counted, backoff honours Retry-After, and a
permanent error is never paid for twice.
"""
from __future__ import annotations

import asyncio
import random
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
                            on_retry: Callable[[BaseException], None] | None = None) -> T:
    """Run `call` until it succeeds, raises a permanent error, or runs out of attempts."""
    for attempt in range(policy.max_attempts):
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # provider SDKs raise many types; classify by status
            if is_permanent(err):
                raise PermanentError(describe(err), status_of(err)) from err
            if attempt + 1 == policy.max_attempts:
                raise GaveUp(f"after {policy.max_attempts} attempts: {describe(err)}") from err
            if on_retry is not None:
                on_retry(err)
            await asyncio.sleep(policy.delay(attempt, retry_after_of(err), rng))
    raise AssertionError("unreachable")
