"""The rate controller: CUBIC growth over the *accepted* rate, the way AWS SDKs' adaptive retry
mode paces its token bucket, with the server's own answer as the measure.

Until the server first throttles, the rate is the ceiling (the user's `--max-*-rps`). On a
throttle, the rate the server accepted over the last second is what it can take: the rate drops
to `beta` times that, and grows back along a cubic in time since the throttle, flat near that
rate (where it should stay) and steeper past it (to find capacity the server has gained). Pure:
time is passed in, so a test drives it with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW_SECONDS = 1.0  # the accepted rate is the count of the last second's acceptances
BINS = 10  # ... kept in this many bins: memory is fixed whatever the rate


@dataclass
class AcceptedMeter:
    """Acceptances per second over the last `WINDOW_SECONDS`, in fixed bins (no per-request list)."""

    window: float = WINDOW_SECONDS
    _bins: list[int] = field(default_factory=lambda: [0] * BINS)
    _bin_of_last: int = 0
    total: int = 0  # every acceptance ever, for rates over longer spans

    def _advance(self, now: float) -> None:
        current = int(now * BINS / self.window)
        gap = current - self._bin_of_last
        if gap > 0:
            for step in range(1, min(gap, BINS) + 1):
                self._bins[(self._bin_of_last + step) % BINS] = 0
            self._bin_of_last = current

    def record(self, now: float) -> None:
        self._advance(now)
        self._bins[self._bin_of_last % BINS] += 1
        self.total += 1

    def rate(self, now: float) -> float:
        self._advance(now)
        return sum(self._bins) / self.window


@dataclass
class CubicRate:
    """The send rate in requests per second, as a function of time; `throttled` starts a new cubic.

    After a throttle at w_max, the rate starts at beta * w_max and climbs back along a concave cubic
    to w_max in `return_seconds`; past it, a convex cubic that doubles it `double_seconds` later.
    The flat part near w_max is where the rate settles; the slow, then faster climb past it finds
    capacity the server has gained (4x in return + 1.44 * double seconds). Both are relative to
    w_max, so the curve takes the same time at 5 rps as at 500.
    """

    ceiling: float
    floor: float
    beta: float = 0.9
    return_seconds: float = 1.0
    double_seconds: float = 5.0
    echo_seconds: float = 0.25  # refusals this soon after a cut are of requests sent before it
    w_max: float | None = None  # None: never throttled, the ceiling holds
    cut_at: float = 0.0
    _total_at_cut: int = 0

    def rate(self, now: float) -> float:
        if self.w_max is None:
            return self.ceiling
        t = max(0.0, now - self.cut_at) - self.return_seconds
        if t < 0:
            shape = -(1.0 - self.beta) * (t / self.return_seconds) ** 2 * (-t / self.return_seconds)
        else:
            shape = (t / self.double_seconds) ** 3
        return min(self.ceiling, max(self.floor, self.w_max * (1.0 + shape)))

    def throttled(self, meter: AcceptedMeter, now: float) -> float:
        """The server refused a request: what it accepted meanwhile is the new w_max.

        The accepted rate, not the sent one: after sending 80 rps to a server that takes 20, the
        sent rate says 80 and one cut (to beta * 80) would still be far above 20. Repeated throttles
        from one burst recompute the same value instead of compounding. Measured since the last
        cut when that is over a second ago (a second's count also holds the burst the server saved
        up while we were under its rate), else over the last second.
        """
        since = now - self.cut_at
        if self.w_max is not None and since >= WINDOW_SECONDS:
            estimate = (meter.total - self._total_at_cut) / since
        else:
            estimate = meter.rate(now)
        if self.w_max is not None and self.echo_seconds <= since < self.return_seconds:
            # Refused again while still below the last estimate: it was too high, so it is at most
            # the rate sent now.
            estimate = min(estimate, self.rate(now))
        self.w_max = min(max(estimate, self.floor), self.ceiling)
        self.cut_at = now
        self._total_at_cut = meter.total
        return self.rate(now)
