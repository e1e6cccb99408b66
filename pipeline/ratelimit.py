"""Pool-wide request-rate control with additive increase, multiplicative decrease.

aiolimiter provides the leaky bucket. To slow down without touching its internals, each request
asks for `ceiling / current_rate` units of a bucket that refills at `ceiling` units per second:
at full speed a request costs one unit; after a 429 it costs more, so every worker slows at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter


@dataclass
class AdaptiveRate:
    """One operation class's rate (create, presign, read), shared by every worker."""

    name: str
    ceiling: float  # requests per second at most (the configured --max-*-rps)
    floor_fraction: float = 0.05
    decrease_factor: float = 0.5
    increase_per_success: float = 0.05  # in units of the ceiling, per successful request
    current: float = field(init=False)
    throttles: int = field(init=False, default=0)
    lowest: float = field(init=False)
    _limiter: AsyncLimiter = field(init=False, repr=False)
    _last_decrease: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.current = self.ceiling
        self.lowest = self.ceiling
        # A burst of at most one second's worth; the bucket holds `ceiling` units.
        self._limiter = AsyncLimiter(max(self.ceiling, 1.0), 1.0)

    async def acquire(self) -> None:
        cost = min(max(self.ceiling, 1.0), max(1.0, self.ceiling / self.current))
        await self._limiter.acquire(cost)

    def throttled(self) -> None:
        """A 429/503 was seen: halve the rate, at most once per second (one burst is one signal)."""
        self.throttles += 1
        now = time.monotonic()
        if now - self._last_decrease < 1.0:
            return
        self._last_decrease = now
        self.current = max(self.ceiling * self.floor_fraction, self.current * self.decrease_factor, 1.0)
        self.lowest = min(self.lowest, self.current)

    def succeeded(self) -> None:
        if self.current < self.ceiling:
            self.current = min(self.ceiling, self.current + self.ceiling * self.increase_per_success)


@dataclass
class RateControl:
    """The three rates the pipeline controls, by operation class."""

    create: AdaptiveRate
    presign: AdaptiveRate
    read: AdaptiveRate

    @classmethod
    def from_limits(cls, create_rps: float, presign_rps: float, read_rps: float) -> RateControl:
        return cls(
            create=AdaptiveRate("create", create_rps),
            presign=AdaptiveRate("presign", presign_rps),
            read=AdaptiveRate("read", read_rps),
        )

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {
            rate.name: {
                "ceiling": rate.ceiling,
                "current": round(rate.current, 2),
                "lowest": round(rate.lowest, 2),
                "throttles": rate.throttles,
            }
            for rate in (self.create, self.presign, self.read)
        }
