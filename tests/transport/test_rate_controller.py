"""The rate controller against a simulated server, on a fake clock: no sleeps, no wall time.

The server is a token bucket of `capacity(t)` requests per second (burst one second's worth), the
way the sandbox's hidden capacity and many real APIs work; the client sends as fast as the
controller lets it (a backlog that never runs dry) and hears each answer `rtt` seconds later.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from pipeline.transport.cubic import AcceptedMeter, CubicRate
from pipeline.transport.rates import AdaptiveRate
from tests.support.clock import FakeClock


@dataclass
class Trace:
    sent: list[tuple[float, float]] = field(default_factory=list)  # (time, rate then)
    accepted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)

    def accepted_between(self, start: float, end: float) -> float:
        return sum(start <= t < end for t in self.accepted) / (end - start)

    def refused_share(self) -> float:
        return len(self.refused) / (len(self.refused) + len(self.accepted))

    def first_time(self, after: float, test: Callable[[float], bool]) -> float:
        return next(t for t, rate in self.sent if t >= after and test(rate)) - after


def simulate(capacity: Callable[[float], float], ceiling: float, seconds: float, rtt: float = 0.02) -> Trace:
    clock = FakeClock()
    rate = AdaptiveRate("create", ceiling, clock=clock)
    tokens, stamp = capacity(0.0), 0.0
    answers: list[tuple[float, bool]] = []
    trace = Trace()
    while clock.now < seconds:
        now = clock.now
        while answers and answers[0][0] <= now:
            clock.now, ok = heapq.heappop(answers)
            rate.succeeded() if ok else rate.throttled()
        clock.now = now
        limit = capacity(now)
        tokens, stamp = min(limit, tokens + (now - stamp) * limit), now
        ok = tokens >= 1.0
        tokens -= 1.0 if ok else 0.0
        (trace.accepted if ok else trace.refused).append(now)
        heapq.heappush(answers, (now + rtt, ok))
        rate.sending()
        trace.sent.append((now, rate.current))
        clock.now = now + 1.0 / rate.current
    return trace


@pytest.mark.parametrize("ceiling", [80.0, 160.0, 400.0])
def test_it_settles_near_the_servers_capacity_and_stays(ceiling: float) -> None:
    """The field report: the server takes 20/s, the user said 80 (or 160, 400)."""
    trace = simulate(lambda t: 20.0, ceiling, seconds=120.0)
    for start in range(10, 120, 10):  # every 10 s window after the first: near C, not oscillating
        assert 0.95 * 20 <= trace.accepted_between(start, start + 10) <= 1.02 * 20
    late = [rate for t, rate in trace.sent if t > 10]
    assert max(late) < 1.6 * 20, "it probes above C, but never climbs back to the ceiling"
    assert sum(late) / len(late) < 1.15 * 20
    assert trace.refused_share() <= 0.03


def test_without_a_limit_it_sends_at_the_ceiling() -> None:
    trace = simulate(lambda t: 1e9, 50.0, seconds=20.0)
    assert not trace.refused and all(rate == 50.0 for _, rate in trace.sent)
    assert trace.accepted_between(0, 20) == pytest.approx(50.0, rel=0.01)


def test_it_follows_the_capacity_down_and_back_up_within_ten_seconds() -> None:
    def capacity(t: float) -> float:
        return 5.0 if 30.0 <= t < 60.0 else 20.0

    trace = simulate(capacity, 80.0, seconds=90.0)
    assert trace.first_time(30.0, lambda rate: rate <= 5.0 * 1.1) <= 10.0
    assert trace.first_time(60.0, lambda rate: rate >= 20.0 * 0.9) <= 10.0
    assert trace.accepted_between(40, 60) >= 0.9 * 5.0
    assert trace.accepted_between(70, 90) >= 0.95 * 20.0


def test_the_cut_is_to_what_the_server_accepted_not_a_fraction_of_the_ceiling() -> None:
    clock = FakeClock()
    rate = AdaptiveRate("presign", 80.0, clock=clock)
    for i in range(20):  # 20 accepted over the last second
        clock.now = i * 0.05
        rate.succeeded()
    rate.throttled()
    assert rate.current == pytest.approx(0.9 * 20)
    rate.throttled()  # more refusals of the same burst: the same value, not a compounding cut
    assert rate.current == pytest.approx(0.9 * 20) and rate.throttles == 2
    assert rate.view["accepted"] == 20.0 and rate.view["lowest"] == pytest.approx(18.0)


def test_the_floor_and_the_curve() -> None:
    curve = CubicRate(ceiling=100.0, floor=2.0)
    assert curve.rate(5.0) == 100.0  # never throttled: the ceiling
    meter = AcceptedMeter()
    curve.throttled(meter, now=10.0)  # nothing accepted: the floor, not zero
    assert curve.rate(10.0) == 2.0
    for i in range(400):  # 40/s from 10 s on
        meter.record(10.0 + i / 40)
    curve.throttled(meter, now=20.0)
    assert curve.rate(20.0) == pytest.approx(36.0)
    assert curve.rate(20.0 + curve.return_seconds) == pytest.approx(40.0)  # back at w_max, flat
    assert curve.rate(20.0 + curve.return_seconds + curve.double_seconds) == pytest.approx(80.0)
    assert curve.rate(1e6) == 100.0  # never past the ceiling


def test_the_meter_counts_the_last_second_in_fixed_memory() -> None:
    meter = AcceptedMeter()
    for i in range(1000):
        meter.record(i / 100)  # 100/s for 10 s
    assert meter.rate(9.995) == pytest.approx(100.0, abs=10)
    assert meter.rate(10.5) == pytest.approx(50.0, abs=10)
    assert meter.rate(30.0) == 0.0


def test_a_rate_the_demand_does_not_use_is_not_grown() -> None:
    clock = FakeClock()
    rate = AdaptiveRate("presign", 80.0, clock=clock)
    for i in range(20):
        clock.now = i * 0.05
        rate.sending()
        rate.succeeded()
    rate.throttled()  # w_max 20
    for i in range(100):  # ten seconds of 5 requests a second: the cubic alone would be at 80
        clock.now = 1.0 + i * 0.1
        if i % 2 == 0:
            rate.sending()
    assert rate.current == pytest.approx(20.0)
