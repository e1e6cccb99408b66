"""A fleet's shared rate against a simulated server, on a fake clock: no sleeps, no database.

Several hosts, each a `FleetShare` with a few request slots, take tokens from one simulated row
that does what `ledger.shared_rate`'s TAKE and CUT statements do (the real statements run against
PostgreSQL in tests/flow/test_fleet.py). The server is a token bucket of `capacity(t)` requests per
second (burst one second's worth), like the sandbox's hidden capacity; a refused request comes back
after Retry-After (1 s and a little) and takes a token again, as `api.client` does.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipeline.ledger.shared_rate import DUE_SLACK_SECONDS
from pipeline.transport.fleet_rate import FleetShare, RowSeen, TakeOrder
from tests.support.clock import FakeClock

DB_SECONDS = 0.002  # one take's round trip to the ledger
RTT = 0.01  # one request's round trip to the server


@dataclass
class Row:
    """`rate_buckets`' row, as TAKE and CUT change it."""

    tokens: float | None = None
    updated_at: float = 0.0
    started_at: float = 0.0
    w_max: float | None = None
    cut_at: float | None = None
    accepted_total: float = 0.0
    accepted_at_cut: float = 0.0
    cuts: list[float] = field(default_factory=list)  # when each estimate was written

    def take(self, order: TakeOrder, now: float) -> RowSeen:
        if self.tokens is None:
            self.tokens, self.started_at = order.burst - 1, now
        else:
            self.tokens = min(order.burst, self.tokens + order.rate * (now - self.updated_at)) - 1
        self.updated_at = now
        self.accepted_total += order.accepted
        return RowSeen(
            self.tokens,
            self.w_max,
            None if self.cut_at is None else now - self.cut_at,
            now - self.started_at,
            self.accepted_total,
            self.accepted_at_cut,
        )

    def cut(self, estimate: float, total: float, echo: float, now: float) -> None:
        if self.cut_at is None or self.cut_at < now - echo:
            self.w_max, self.cut_at, self.accepted_at_cut = estimate, now, total
            self.cuts.append(now)
            assert self.tokens is not None
            self.tokens = min(self.tokens, 0.0)


@dataclass
class Fleet:
    """`hosts` hosts of `slots` request slots each, draining `files` requests."""

    capacity: Callable[[float], float]
    ceiling: float
    hosts: int = 3
    slots: int = 8
    files: int = 100_000
    row: Row = field(default_factory=Row)
    accepted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    rates: list[tuple[float, float]] = field(default_factory=list)  # (time, a host's rate then)

    def run(self, seconds: float) -> Fleet:
        clock = FakeClock()
        shares = [
            FleetShare(ceiling=self.ceiling, floor=self.ceiling * 0.02, clock=clock)
            for _ in range(self.hosts)
        ]
        rng = random.Random(7)
        tokens, stamp = self.capacity(0.0), 0.0
        order = itertools.count()
        events: list[tuple[float, int, Any, int]] = [
            (i * 0.001, next(order), "take", h) for h in range(self.hosts) for i in range(self.slots)
        ]
        heapq.heapify(events)
        left = self.files
        while events:
            now, _, kind, host = heapq.heappop(events)
            if now > seconds:
                break
            clock.now = now
            share = shares[host]
            if kind == "take":
                if left <= 0:
                    continue
                left -= 1
                balance, wait = self._take(share, now)
                heapq.heappush(events, (now + DB_SECONDS + wait, next(order), ("send", balance, wait), host))
            elif kind[0] == "send":
                _, balance, waited = kind
                due = share.wait(balance)
                if due - waited > DUE_SLACK_SECONDS:  # the rate dropped while it waited
                    heapq.heappush(events, (now + due - waited, next(order), ("send", balance, due), host))
                    continue
                self.rates.append((now, share.rate))
                limit = self.capacity(now)
                tokens, stamp = min(limit, tokens + (now - stamp) * limit), now
                ok = tokens >= 1.0
                tokens -= 1.0 if ok else 0.0
                (self.accepted if ok else self.refused).append(now)
                heapq.heappush(events, (now + RTT, next(order), "ok" if ok else "refused", host))
            elif kind == "ok":
                share.accepted()
                heapq.heappush(events, (now, next(order), "take", host))
            else:
                share.throttled()
                left += 1  # the same request, sent again after Retry-After
                heapq.heappush(events, (now + rng.uniform(1.0, 1.1), next(order), "take", host))
        return self

    def _take(self, share: FleetShare, now: float) -> tuple[float, float]:
        """What SharedRate.take does, against the simulated row: the balance and the wait."""
        order = share.order()
        row = self.row.take(order, now)
        estimate = share.estimate(row, order.refused_ago) if order.throttled else None
        if estimate is not None:
            self.row.cut(estimate, row.accepted_total, share.echo_seconds, now)
            row = row.cut(estimate)
        share.follow(row.w_max, row.since_cut)
        return row.balance, share.wait(row.balance)

    def accepted_between(self, start: float, end: float) -> float:
        return sum(start <= t < end for t in self.accepted) / (end - start)

    def refused_share(self) -> float:
        return len(self.refused) / (len(self.refused) + len(self.accepted))

    def settled(self, after: float, target: float) -> float:
        """Seconds from `after` until the accepted rate (over a 2 s window) is within 10% of `target`."""
        t = after
        while abs(self.accepted_between(t, t + 2.0) - target) > 0.1 * target:
            t += 0.25
            assert t < after + 60, f"never within 10% of {target}"
        return t - after


@pytest.mark.parametrize(("hosts", "ceiling"), [(2, 80.0), (3, 80.0), (3, 400.0)])
def test_a_fleet_settles_near_the_servers_capacity(hosts: int, ceiling: float) -> None:
    """Each host told 80/s (or 400), the server takes 20: the fleet together stays near 20."""
    fleet = Fleet(lambda t: 20.0, ceiling, hosts=hosts).run(60.0)
    for start in range(10, 60, 5):  # above 20 only by what the server saved up meanwhile
        assert 0.9 * 20 <= fleet.accepted_between(start, start + 5) <= 1.15 * 20, start
    assert fleet.refused_share() <= 0.09  # every slot always waiting on this one class: the worst case


CHAINED_CUTS = (
    "known: a probe's late refusals cut again (20 -> 18 -> 16); an echo window as deep as the queue"
    " (branch wip/fleet429b-candidate) passes these but did not beat main on the bench's 429 shares"
)


@pytest.mark.xfail(strict=True, reason=CHAINED_CUTS)
def test_a_probe_past_the_estimate_makes_one_cut() -> None:
    """At 20 rps for a minute, few estimates come within a second of the one before (7 to 10 now)."""
    fleet = Fleet(lambda t: 20.0, 80.0).run(60.0)
    cuts = [cut for cut in fleet.row.cuts if cut >= 5.0]
    assert sum(later - cut < 1.0 for cut, later in itertools.pairwise(cuts)) <= 2


@pytest.mark.xfail(strict=True, reason=CHAINED_CUTS)
def test_a_probes_late_refusals_make_no_new_estimate() -> None:
    """Cut to 20 (18/s now), refused again 0.3 and 0.6 s later with a second's queue ahead: those
    requests took their tokens before the cut, so no new estimate."""
    share = FleetShare(ceiling=80.0, floor=1.0)
    share.follow(20.0, 0.0)
    for since_cut in (0.3, 0.6):
        row = RowSeen(-share.rate, 20.0, since_cut, 30.0, 100.0 + 18.0 * since_cut, 100.0)
        assert share.estimate(row) is None, since_cut


def test_a_fleet_drains_a_backlog_near_n_over_c() -> None:
    """The flow test's case: 240 requests, three hosts at 80/s, the server takes 20."""
    fleet = Fleet(lambda t: 20.0, 80.0, files=240).run(60.0)
    assert len(fleet.accepted) == 240
    assert fleet.accepted[-1] - fleet.accepted[0] <= 240 / 20 / 0.9
    assert fleet.refused_share() <= 0.15  # the first burst (24 slots at once) weighs on so few


def test_a_fleet_follows_a_step_down_and_back_up_within_ten_seconds() -> None:
    def capacity(t: float) -> float:
        return 5.0 if 30.0 <= t < 60.0 else 20.0

    fleet = Fleet(capacity, 80.0).run(90.0)
    assert fleet.settled(30.0, 5.0) <= 10.0
    assert fleet.settled(60.0, 20.0) <= 10.0
    assert fleet.accepted_between(45, 60) >= 0.75 * 5.0
    assert fleet.accepted_between(75, 90) >= 0.9 * 20.0
    assert fleet.refused_share() <= 0.1


def test_an_estimate_soon_after_another_is_over_the_span_it_counted() -> None:
    """Refused 0.5 s after the last estimate, having accepted 10 since: 20/s, not 10."""
    share = FleetShare(ceiling=80.0, floor=1.0)
    share.follow(20.0, 0.5)
    row = RowSeen(0.0, 20.0, 0.5, 30.0, accepted_total=110.0, accepted_at_cut=100.0)
    assert share.estimate(row) == pytest.approx(share.rate)  # 20, capped by the rate sent now (19.75)
    assert share.rate > 19.5
    assert share.estimate(RowSeen(0.0, 20.0, 0.1, 30.0, 110.0, 100.0)) is None  # an echo


def test_the_bucket_holds_one_second_at_the_fleets_rate() -> None:
    share = FleetShare(ceiling=80.0, floor=1.0)
    assert share.order().burst == 80.0
    share.follow(20.0, 0.0)
    share.accepted()
    share.throttled()
    order = share.order()
    assert order.burst == pytest.approx(18.0) and order.rate == pytest.approx(18.0)
    assert (order.accepted, order.throttled) == (1, True)
    assert share.order().accepted == 0, "reported once"
