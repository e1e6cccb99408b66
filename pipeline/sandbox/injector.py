"""Runtime side of fault injection: counters, the seeded RNG, token buckets, the bandwidth cap.

The plan (`faults.py`) says what may happen; this decides, per request, what does happen. All
randomness comes from one `random.Random(plan.seed)`, so a test with a given plan and request order
sees the same faults every run. Replacing the plan resets counters, RNG and buckets.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from email.utils import formatdate

from pipeline.sandbox.faults import FaultPlan, OperationFaults, RateLimit, StatusFault, Trigger


@dataclass
class Decision:
    """What to do to one request, decided when it arrives."""

    op: str
    nth: int
    rate_limited_retry_after: int | None = None
    delay_seconds: float = 0.0
    status: StatusFault | None = None
    reset_after: int | None = None
    lose_response: bool = False
    signature_mismatch: bool = False


@dataclass
class TokenBucket:
    rate: float
    capacity: float
    tokens: float
    stamp: float = field(default_factory=time.monotonic)

    def take_nothing(self) -> None:
        """Bring the tokens up to now at the old rate (before the rate changes)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self) -> float | None:
        """Take a token; None on success, else seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate


class BandwidthLimiter:
    """Shared byte budget for the whole S3 server: each chunk books its slot on one timeline."""

    def __init__(self, bytes_per_second: int) -> None:
        self.rate = float(bytes_per_second)
        self._next_free = time.monotonic()

    async def consume(self, nbytes: int) -> None:
        now = time.monotonic()
        start = max(now, self._next_free)
        self._next_free = start + nbytes / self.rate
        wait = self._next_free - now
        if wait > 0.001:
            await asyncio.sleep(wait)


def retry_after_value(fault: StatusFault) -> str | None:
    if fault.retry_after is None:
        return None
    if fault.retry_after_http_date:
        return formatdate(time.time() + fault.retry_after, usegmt=True)
    return str(math.ceil(fault.retry_after))


class FaultInjector:
    """Holds the current plan and its run-time state."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self._counters: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self.bandwidth: BandwidthLimiter | None = None
        self.set_plan(plan)

    def set_plan(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self._counters = {}
        self._buckets = {}
        rate = plan.s3_bandwidth_bytes_per_second
        self.bandwidth = BandwidthLimiter(rate) if rate else None

    def set_capacity(self, op: str, per_second: float | None) -> None:
        """Change `op`'s hidden capacity mid-run (None: unlimited), leaving counters, RNG and the
        other faults as they are: the token bucket keeps its tokens, refilled at the new rate."""
        faults = self.plan.operations.get(op) or OperationFaults()
        limit = None if per_second is None else RateLimit(per_second=per_second)
        operations = {**self.plan.operations, op: faults.model_copy(update={"rate_limit": limit})}
        self.plan = self.plan.model_copy(update={"operations": operations})
        bucket = self._buckets.get(op)
        if bucket is None or per_second is None:
            self._buckets.pop(op, None)
            return
        bucket.take_nothing()
        bucket.rate = per_second
        bucket.capacity = float(max(1, math.ceil(per_second)))
        bucket.tokens = min(bucket.tokens, bucket.capacity)

    def _fires(self, trigger: Trigger, nth: int) -> bool:
        if nth in trigger.nth:
            return True
        return trigger.probability > 0 and self.rng.random() < trigger.probability

    def _delay(self, faults: OperationFaults, nth: int) -> float:
        lat = faults.latency
        if lat is None or (lat.nth and nth not in lat.nth):
            return 0.0
        if not lat.nth and lat.probability < 1.0 and self.rng.random() >= lat.probability:
            return 0.0
        if lat.distribution == "uniform":
            ms = self.rng.uniform(lat.low_ms, max(lat.low_ms, lat.high_ms))
        elif lat.distribution == "exponential":
            ms = self.rng.expovariate(1.0 / lat.mean_ms) if lat.mean_ms > 0 else 0.0
        else:
            ms = lat.fixed_ms
        return ms / 1000.0

    def _rate_limited(self, op: str, faults: OperationFaults) -> int | None:
        limit = faults.rate_limit
        if limit is None:
            return None
        bucket = self._buckets.get(op)
        if bucket is None:
            capacity = float(limit.burst or max(1, math.ceil(limit.per_second)))
            bucket = self._buckets[op] = TokenBucket(limit.per_second, capacity, capacity)
        wait = bucket.take()
        return None if wait is None else max(1, math.ceil(wait))

    def decide(self, op: str) -> Decision:
        """Count this request of `op` and decide its faults (at most one status fault)."""
        nth = self._counters[op] = self._counters.get(op, 0) + 1
        decision = Decision(op=op, nth=nth)
        faults = self.plan.operations.get(op)
        if faults is None:
            return decision
        decision.rate_limited_retry_after = self._rate_limited(op, faults)
        if decision.rate_limited_retry_after is not None:
            return decision
        decision.delay_seconds = self._delay(faults, nth)
        decision.status = next((f for f in faults.errors if self._fires(f, nth)), None)
        if decision.status is None and faults.reset is not None and self._fires(faults.reset, nth):
            decision.reset_after = faults.reset.after_bytes
        if faults.lost_response is not None and self._fires(faults.lost_response, nth):
            decision.lose_response = True
        if faults.signature_mismatch is not None and self._fires(faults.signature_mismatch, nth):
            decision.signature_mismatch = True
        return decision

    def presign_expiry(self, kind: str, default: int) -> tuple[int, int]:
        """(URL lifetime, lifetime to report) for a presign of `kind` ('presign' or 'files')."""
        short = self.plan.short_expiry
        if short is None or kind not in short.applies_to:
            return default, default
        if short.fraction < 1.0 and self.rng.random() >= short.fraction:
            return default, default
        return short.expires_in, (short.expires_in if short.report_actual else default)
