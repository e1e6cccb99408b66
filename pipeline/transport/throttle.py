"""A throttled request waits its turn and is sent again; it is not a failure of the file.

A 429 (or a 503 with Retry-After) says "not now", not "this file is broken": the request waits out
the Retry-After (or a short backoff when there is none), then queues for the rate again, without
spending the file's retry budget (`--retries`, `--retry-max-elapsed`), which is for the file's own
errors. The bound: when the server has accepted no request of the class for `patience` seconds
while refusing them, the request gives up with `ThrottledTooLongError`, which the run treats as
an outage-like stop (no new files; the ones in flight fail as transient, tried again next run).
"""

from __future__ import annotations

import random

from pipeline.errors import ErrorClass, TransferError

THROTTLE_PATIENCE_SECONDS = 600.0  # no acceptance for this long while refused: stop, don't spin
NO_RETRY_AFTER_BASE = 0.5  # without Retry-After: 0.5 s, 1 s, 2 s ... (jittered), capped
NO_RETRY_AFTER_CAP = 30.0
SPREAD = 0.1  # up to 10% more than Retry-After, so the throttled ones do not return as one burst


class ThrottledTooLongError(TransferError):
    """The server refused every request of a class for longer than the patience: stop the run.

    Transient in the ledger (the file is tried again next run), but never retried within this
    run: retrying is what the server has been refusing."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, ErrorClass.TRANSIENT, status=status)

    @property
    def is_transient(self) -> bool:
        return False


def is_throttle(status: int, retry_after: float | None) -> bool:
    """429 always; 503 only with a Retry-After (without it, a 503 is an error of its own)."""
    return status == 429 or (status == 503 and retry_after is not None)


def throttle_delay(retry_after: float | None, waits: int, rng: random.Random | None = None) -> float:
    """Seconds before sending a throttled request again: the Retry-After (spread a little), else a
    jittered exponential backoff by how many times this request has waited."""
    pick = (rng or random).uniform
    if retry_after is not None:
        return retry_after * (1.0 + pick(0.0, SPREAD))
    ceiling = min(NO_RETRY_AFTER_CAP, NO_RETRY_AFTER_BASE * 2.0**waits)
    return pick(ceiling / 2, ceiling)
