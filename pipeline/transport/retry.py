"""Retry policy for transient failures: exponential backoff with full jitter, honouring Retry-After.

Built on tenacity, and the one retry mechanism of a file's three requests (presign, PUT, create).
Only errors classified TRANSIENT are retried; what is safe before a retry (asking whether a create
landed, a fresh URL for an expired one) is decided by the journey inside the retried attempt.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.stop import stop_base

from pipeline.errors import TransferError

T = TypeVar("T")

RETRY_AFTER_CAP_SECONDS = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 6  # attempts after the first, per step
    max_elapsed: float = 600.0  # seconds, per step
    base_delay: float = 0.5
    max_delay: float = 30.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if _looks_like_date(value) else None
        if parsed is None:
            return None
        seconds = parsed.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def _looks_like_date(value: str) -> bool:
    try:
        email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return True


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TransferError) and exc.is_transient


def backoff_seconds(policy: RetryPolicy, attempt: int, retry_after: float | None) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)), but never shorter than Retry-After."""
    jittered = random.uniform(0, min(policy.max_delay, policy.base_delay * 2 ** max(attempt - 1, 0)))
    return max(jittered, retry_after or 0.0)


class _stop_past_deadline(stop_base):
    """Stop when the next sleep would end after `deadline` (a time.monotonic() value)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + (retry_state.upcoming_sleep or 0.0) > self.deadline


async def retry_transient(
    policy: RetryPolicy,
    operation: Callable[[], Awaitable[T]],
    on_retry: Callable[[TransferError], Awaitable[None]] | None = None,
    *,
    deadline: float | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> T:
    """Run `operation`, retrying transient TransferErrors per `policy`; re-raise the last error.

    At most `policy.retries` retries, and never a sleep that would end more than
    `policy.max_elapsed` after the first attempt (or after `deadline`, a time.monotonic() value,
    for a budget shared by several steps): a Retry-After longer than what is left ends the
    retries at once instead of being cut short. `sleep` replaces the backoff sleep (the runner's
    gives its worker slot to another file meanwhile).
    """

    first_try = time.monotonic()

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, TransferError) else None
        return backoff_seconds(policy, state.attempt_number, retry_after)

    async def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if on_retry is not None and isinstance(exc, TransferError):
            await on_retry(exc)

    stop = stop_after_attempt(policy.retries + 1) | _stop_past_deadline(first_try + policy.max_elapsed)
    if deadline is not None:
        stop = stop | _stop_past_deadline(deadline)
    retrying = AsyncRetrying(
        retry=retry_if_exception(_is_transient),
        wait=wait,
        stop=stop,
        before_sleep=before_sleep,
        reraise=True,
        sleep=sleep if sleep is not None else anyio.sleep,
    )
    async for attempt in retrying:
        with attempt:
            return await operation()
    raise AssertionError("unreachable: tenacity re-raises the last error")
