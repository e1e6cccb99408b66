"""Pool-wide request-rate control with additive increase, multiplicative decrease.

aiolimiter provides the leaky bucket. To slow down without touching its internals, each request
asks for `ceiling / current_rate` units of a bucket that drains at `ceiling` units per second:
at full speed a request costs one unit; after a 429 it costs more, so every worker slows at once.

Every change is mirrored into `RateControl.live` (plain dicts, updated in place), which the run's
counters point at, so the progress display shows the current rates without knowing this module.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter

RateView = dict[str, float]


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
    view: RateView = field(init=False, default_factory=dict)
    # Also waited for before each request, when set: a limit shared with other hosts (pipeline.ledger.
    # shared_rate), so that a fleet together stays under the ceiling too.
    shared: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)
    _capacity: float = field(init=False, repr=False)
    _limiter: AsyncLimiter = field(init=False, repr=False)
    _last_decrease: float = field(init=False, default=-1e9)

    def __post_init__(self) -> None:
        self.current = self.ceiling
        self.lowest = self.ceiling
        # A burst of at most one second's worth (and at least one request): the bucket holds
        # `capacity` units and drains at `ceiling` units per second, also below 1 rps.
        self._capacity = max(self.ceiling, 1.0)
        self._limiter = AsyncLimiter(self._capacity, self._capacity / self.ceiling)
        self._publish()

    @property
    def floor(self) -> float:
        """The slowest the rate goes: a fraction of the ceiling, but not below 1 rps (or the ceiling)."""
        return min(self.ceiling, max(self.ceiling * self.floor_fraction, 1.0))

    @property
    def cost(self) -> float:
        """Bucket units one request takes now (1 at full speed)."""
        return min(self._capacity, max(1.0, self.ceiling / self.current))

    async def acquire(self) -> None:
        """Wait for this request's turn. The cost is read again each time the bucket lets us
        through: a worker that queued at full speed pays the difference if the rate dropped
        meanwhile, so a throttle slows the requests already waiting, not only later ones."""
        paid = 0.0
        while (due := self.cost - paid) > 1e-9:
            await self._limiter.acquire(due)
            paid += due
        if self.shared is not None:
            await self.shared()

    def throttled(self) -> None:
        """A 429/503 was seen: halve the rate, at most once per second (one burst is one signal)."""
        self.throttles += 1
        now = time.monotonic()
        if now - self._last_decrease >= 1.0:
            self._last_decrease = now
            self.current = max(self.floor, self.current * self.decrease_factor)
            self.lowest = min(self.lowest, self.current)
        self._publish()

    def succeeded(self) -> None:
        if self.current < self.ceiling:
            self.current = min(self.ceiling, self.current + self.ceiling * self.increase_per_success)
            self._publish()

    def _publish(self) -> None:
        self.view.update(
            ceiling=self.ceiling,
            current=round(self.current, 2),
            lowest=round(self.lowest, 2),
            throttles=self.throttles,
        )


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

    @property
    def live(self) -> dict[str, RateView]:
        """name → {ceiling, current, lowest, throttles}, kept up to date in place."""
        return {rate.name: rate.view for rate in (self.create, self.presign, self.read)}

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {name: dict(view) for name, view in self.live.items()}
