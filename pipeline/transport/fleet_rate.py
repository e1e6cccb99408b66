"""One host's share of a fleet's rate: what it reports with each take from the fleet's bucket, how
it estimates the server's capacity when refused, and the rate it follows (the same curve on every
host). Pure: the shared row is read and written elsewhere (`ledger.shared_rate`), so a test can
drive several hosts against one simulated row on a fake clock.

The fleet's rate after a refusal is the fleet's acceptances per second since the last estimate,
over the span they were counted in (not over a whole second when the span was shorter: that read
a fraction of the real rate, and the rate collapsed after a second refusal). The bucket holds one
second at the fleet's *current* rate, not at the ceiling: tokens saved up at the ceiling were a
burst of refusals after every cut; and a request already waiting for its token when the rate
drops waits longer, as the single host's bucket does. A refusal is reported with the host's next
take, which may come long after it (every slot of the host waiting out a Retry-After): it says how
long ago it was, and a refusal from before the last estimate (or just after it, an echo of requests
sent before it) makes no new one. Taken as new, such late echoes cut a rate that was already
right, again and again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.transport.cubic import WINDOW_SECONDS, CubicRate


@dataclass(frozen=True)
class TakeOrder:
    """What a host sends with one take: its outcomes since the last one and how to refill."""

    accepted: int  # this host's acceptances since its last take
    throttled: bool  # whether it was refused since its last take
    refused_ago: float  # seconds since the latest of those refusals (0 when none)
    rate: float  # refill rate: the fleet's rate as this host last saw it
    burst: float  # tokens the bucket holds at most: one second at that rate


@dataclass(frozen=True)
class RowSeen:
    """The fleet's row as one take left it (seconds by the server's clock)."""

    balance: float  # tokens after this take; below zero, the debt before this token is due
    w_max: float | None  # the fleet's last estimate (None: never throttled)
    since_cut: float | None  # seconds since that estimate
    since_start: float  # seconds since the row was made
    accepted_total: float  # every acceptance reported so far
    accepted_at_cut: float  # ... as of the last estimate

    def cut(self, estimate: float) -> RowSeen:
        """The row once this take has written a new estimate (and emptied the bucket)."""
        total = self.accepted_total
        return RowSeen(min(self.balance, 0.0), estimate, 0.0, self.since_start, total, total)


@dataclass
class FleetShare:
    """This host's view of the fleet's rate; `order()` before each take, `follow()` after it."""

    ceiling: float
    floor: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)  # this host's own
    rate: float = field(init=False)  # the fleet's rate as of the last take
    _curve: CubicRate = field(init=False, repr=False)
    _accepted: int = field(init=False, default=0)
    _refused_at: float | None = field(init=False, default=None)  # the latest refusal not yet reported

    def __post_init__(self) -> None:
        self.floor = min(self.ceiling, self.floor)
        self.rate = self.ceiling
        self._curve = CubicRate(ceiling=self.ceiling, floor=self.floor)

    @property
    def echo_seconds(self) -> float:
        """Refusals this soon after an estimate are of requests sent before it: no new estimate."""
        return self._curve.echo_seconds

    def accepted(self) -> None:
        self._accepted += 1

    def throttled(self) -> None:
        """Refused: reported with the next take; until then this host already slows to just under
        the fleet's last estimate (what its requests waiting for their token are held to)."""
        self._refused_at = self.clock()
        if self._curve.w_max is not None:
            self.rate = min(self.rate, self._curve.beta * self._curve.w_max)

    def order(self) -> TakeOrder:
        """The next take's report (this host's pending outcomes are handed over, then cleared)."""
        refused_ago = 0.0 if self._refused_at is None else max(0.0, self.clock() - self._refused_at)
        order = TakeOrder(
            self._accepted, self._refused_at is not None, refused_ago, self.rate, max(1.0, self.rate)
        )
        self._accepted, self._refused_at = 0, None
        return order

    def estimate(self, row: RowSeen, refused_ago: float = 0.0) -> float | None:
        """The fleet's new w_max after a refusal this host reports (`refused_ago` seconds before
        the take), or None when the refusal came before the last estimate or within its echo.

        The fleet's acceptances since the last estimate, per second of the span they were counted
        in. Before any estimate, since the row began, over at least a second (the server's saved-up
        burst would otherwise read as capacity). Refused again within the return time: the rate
        sent now was too high, so the estimate is at most that.
        """
        since_cut = row.since_cut
        if since_cut is not None and since_cut - refused_ago < self.echo_seconds:
            return None
        span = max(row.since_start, WINDOW_SECONDS) if since_cut is None else since_cut
        estimate = (row.accepted_total - row.accepted_at_cut) / span
        if since_cut is not None and since_cut - refused_ago < self._curve.return_seconds:
            estimate = min(estimate, self.rate)
        return min(max(estimate, self.floor), self.ceiling)

    def follow(self, w_max: float | None, since_cut: float | None) -> float:
        """The fleet's rate now, from the row's curve (every host computes the same one)."""
        if w_max is None or since_cut is None:
            self.rate = self.ceiling
        else:
            self._curve.w_max = w_max
            self._curve.cut_at = -since_cut
            self.rate = self._curve.rate(0.0)
        return self.rate

    def wait(self, balance: float) -> float:
        """Seconds from its take until a token taken at `balance` is due (0 when the bucket had
        one), at the rate known now: a caller waiting for it checks again after its wait, and
        waits the difference when the rate has dropped meanwhile."""
        return -balance / self.rate if balance < 0 else 0.0
