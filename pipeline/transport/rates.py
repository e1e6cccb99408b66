"""Pool-wide request rates that find what the server accepts (`transport.cubic`), under the user's
ceiling (`--max-*-rps`).

aiolimiter provides the leaky bucket. To slow down without touching its internals, each request
asks for `ceiling / current_rate` units of a bucket that drains at `ceiling` units per second:
at full speed a request costs one unit; after a 429 it costs more, so every worker slows at once.

In a fleet (`shared` set), the rate is the fleet's, kept in the ledger (`ledger.shared_rate`):
each host's own bucket then only holds it to the ceiling, and the shared bucket paces it.

Every change is mirrored into `RateControl.live` (plain dicts, updated in place), which the run's
counters point at, so the progress display shows the current rates without knowing this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiolimiter import AsyncLimiter

from pipeline.transport.cubic import AcceptedMeter, CubicRate

RateView = dict[str, float]
# Past the last estimate, the rate grows to at most this times what was sent over the last second:
# a rate the demand does not use is not grown, so a burst of demand after a lull meets a rate
# near the last one, not one that climbed unobserved.
DEMAND_HEADROOM = 1.5
Clock = Callable[[], float]


class FleetRate(Protocol):
    """A rate shared by several hosts: told of this host's outcomes, it paces and reports the fleet's."""

    @property
    def rate(self) -> float: ...

    async def take(self) -> None: ...

    def accepted(self) -> None: ...

    def throttled(self) -> None: ...


@dataclass
class AdaptiveRate:
    """One operation class's rate (create, presign, read), shared by every worker."""

    name: str
    ceiling: float  # requests per second at most (the configured --max-*-rps)
    floor_fraction: float = 0.02
    clock: Clock = field(default=time.monotonic, repr=False)
    throttles: int = field(init=False, default=0)
    lowest: float = field(init=False)
    view: RateView = field(init=False, default_factory=dict)
    # When set: a rate shared with other hosts (pipeline.ledger.shared_rate), so that a fleet
    # together finds, and stays near, what the server accepts.
    shared: FleetRate | None = field(default=None, repr=False)
    _cubic: CubicRate = field(init=False, repr=False)
    _meter: AcceptedMeter = field(init=False, repr=False, default_factory=AcceptedMeter)
    _sent: AcceptedMeter = field(init=False, repr=False, default_factory=AcceptedMeter)
    _capacity: float = field(init=False, repr=False)
    _limiter: AsyncLimiter = field(init=False, repr=False)
    _accepted_total: int = field(init=False, default=0)
    _first_accept: float | None = field(init=False, default=None)
    _last_accept: float = field(init=False, default=0.0)
    _refusing_since: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.lowest = self.ceiling
        self._cubic = CubicRate(ceiling=self.ceiling, floor=self.floor)
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
    def current(self) -> float:
        """The rate requests are sent at now (the fleet's, in a fleet)."""
        if self.shared is not None:
            return min(self.ceiling, self.shared.rate)
        now = self.clock()
        rate = self._cubic.rate(now)
        if self._cubic.w_max is not None:  # no growth past what is used (as AWS caps at 2x sent)
            rate = min(rate, max(self._cubic.w_max, DEMAND_HEADROOM * self._sent.rate(now)))
        return rate

    @property
    def cost(self) -> float:
        """Bucket units one request takes now (1 at full speed, and always in a fleet)."""
        if self.shared is not None:
            return 1.0
        return min(self._capacity, max(1.0, self.ceiling / self.current))

    async def acquire(self) -> None:
        """Wait for this request's turn. The cost is read again each time the bucket lets us
        through: a worker that queued at full speed pays the difference if the rate dropped
        meanwhile, so a throttle slows the requests already waiting, not only later ones."""
        paid = 0.0
        while (due := self.cost - paid) > 1e-9:
            await self._limiter.acquire(due)
            paid += due
        self.sending()
        if self.shared is not None:
            await self.shared.take()

    def sending(self) -> None:
        """A request leaves now (counted for the demand cap)."""
        self._sent.record(self.clock())

    def accepted_rate(self) -> float:
        """Requests the server accepted over the last second."""
        return self._meter.rate(self.clock())

    def throttled(self) -> None:
        """A 429/503 was seen: the rate drops to just under what the server accepted meanwhile."""
        self.throttles += 1
        if self._refusing_since is None:
            self._refusing_since = self.clock()
        if self.shared is not None:
            self.shared.throttled()
        else:
            now = self.clock()
            self._cubic.throttled(self._meter, now)
        self.lowest = min(self.lowest, self.current)
        self._publish()

    def succeeded(self) -> None:
        now = self.clock()
        self._refusing_since = None
        self._meter.record(now)
        self._accepted_total += 1
        if self._first_accept is None:
            self._first_accept = now
        self._last_accept = now
        if self.shared is not None:
            self.shared.accepted()
        if self.throttles:
            self._publish()

    def refused_for(self) -> float:
        """Seconds since the server last accepted a request of this class, if it has refused one
        since (0 while it accepts): what bounds a throttled request's patience."""
        return 0.0 if self._refusing_since is None else self.clock() - self._refusing_since

    def mean_accepted_rate(self) -> float:
        """Accepted requests per second from the first acceptance to the last (0 before two)."""
        if self._first_accept is None or self._last_accept <= self._first_accept:
            return 0.0
        return (self._accepted_total - 1) / (self._last_accept - self._first_accept)

    def _publish(self) -> None:
        self.view.update(
            ceiling=self.ceiling,
            current=round(self.current, 2),
            lowest=round(self.lowest, 2),
            throttles=self.throttles,
            accepted=round(self.accepted_rate(), 2),
            accepted_mean=round(self.mean_accepted_rate(), 2),
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
    def all(self) -> tuple[AdaptiveRate, AdaptiveRate, AdaptiveRate]:
        return (self.create, self.presign, self.read)

    @property
    def live(self) -> dict[str, RateView]:
        """name → {ceiling, current, lowest, throttles, accepted, accepted_mean}, kept up to date in
        place (refresh() first for the values that move with time alone)."""
        return {rate.name: rate.view for rate in self.all}

    def refresh(self) -> None:
        """Bring the live views up to date: the cubic climbs, and the accepted rate decays, with time."""
        for rate in self.all:
            if rate.throttles or rate.shared is not None:
                rate._publish()

    def snapshot(self) -> dict[str, dict[str, float]]:
        self.refresh()
        return {name: dict(view) for name, view in self.live.items()}
