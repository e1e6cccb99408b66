"""The health gate's state machine, on a fake clock: no sleeps stand in for events, no wall clock.

The fake clock's `sleep` moves time forward at once (and lets the other tasks run), so a test reads
the gate's decisions (when it opens, when it probes, when it gives up) as numbers.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import pytest

from pipeline.errors import ErrorClass, NetworkError, OutageError, StalledUploadError, TransferError
from pipeline.transport.outage import HealthGate, OutagePolicy, is_outage_failure

pytestmark = pytest.mark.anyio

POLICY = OutagePolicy(
    max_outage=60.0, start_budget=5.0, threshold=3, start_threshold=2, base_delay=1.0, max_delay=8.0
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


class ScriptedProbe:
    """Answers False `down_for` times, then True; counts probes and how many run at once."""

    def __init__(self, down_for: int) -> None:
        self.down_for = down_for
        self.calls = 0
        self.running = 0
        self.most_at_once = 0

    async def __call__(self) -> bool:
        self.calls += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await anyio.lowlevel.checkpoint()
        self.running -= 1
        return self.calls > self.down_for


def make_gate(probe: Callable[[], Awaitable[bool]], clock: FakeClock, *, answered: bool = True) -> HealthGate:
    gate = HealthGate("API at http://x", probe, POLICY, clock=clock, sleep=clock.sleep, rng=random.Random(7))
    if answered:
        gate.answered()  # the endpoint has answered once in this run: a mid-run outage
    return gate


def refused(what: str = "connection refused") -> NetworkError:
    return NetworkError(f"presign: ClientConnectorError: {what}")


async def test_a_healthy_gate_lets_requests_through_and_leaves_single_failures_to_the_caller() -> None:
    clock = FakeClock()
    gate = make_gate(ScriptedProbe(0), clock)
    await gate.passage()
    assert await gate.failed(refused("one")) is False
    assert await gate.failed(refused("two")) is False
    gate.answered()  # an answer between failures: they are not "in a row"
    assert await gate.failed(refused("three")) is False
    assert not gate.is_open and clock.sleeps == []


async def test_failures_in_a_row_open_it_and_the_first_answer_closes_it() -> None:
    clock = FakeClock()
    probe = ScriptedProbe(down_for=3)
    gate = make_gate(probe, clock)
    assert await gate.failed(refused("a")) is False
    assert await gate.failed(refused("b")) is False
    released: list[int] = []

    async def waiter(n: int) -> None:
        await gate.passage()
        released.append(n)

    async with anyio.create_task_group() as tg:
        tg.start_soon(gate.failed, refused("c"))  # the third in a row: opens, waits, then "send again"
        await anyio.lowlevel.checkpoint()
        assert gate.is_open
        for n in range(5):
            tg.start_soon(waiter, n)
    assert sorted(released) == [0, 1, 2, 3, 4]
    assert not gate.is_open
    assert probe.calls == 4 and probe.most_at_once == 1  # one prober at a time
    # Backoff doubles from base_delay, capped, each jittered within [cap/2, cap].
    caps = [1.0, 2.0, 4.0, 8.0]
    assert len(clock.sleeps) == 4
    for slept, cap in zip(clock.sleeps, caps, strict=True):
        assert cap / 2 <= slept <= cap


async def test_through_sends_again_after_the_outage_and_counts_nothing_against_the_request() -> None:
    clock = FakeClock()
    gate = make_gate(ScriptedProbe(down_for=2), clock)
    gate.failures_in_a_row = POLICY.threshold - 1
    sent = 0

    async def request() -> str:
        nonlocal sent
        sent += 1
        if sent == 1:
            raise refused()
        return "ok"

    assert await gate.through(request) == "ok"
    assert sent == 2 and not gate.is_open


async def test_an_ordinary_error_passes_through_and_counts_as_an_answer() -> None:
    clock = FakeClock()
    gate = make_gate(ScriptedProbe(0), clock)
    gate.failures_in_a_row = 2

    async def request() -> None:
        raise TransferError("presign: HTTP 400: bad", ErrorClass.PERMANENT, status=400)

    with pytest.raises(TransferError, match="HTTP 400"):
        await gate.through(request)
    assert gate.failures_in_a_row == 0


async def test_a_request_answered_while_open_closes_it_for_the_waiters() -> None:
    clock = FakeClock()
    never = ScriptedProbe(down_for=10**6)
    gate = make_gate(never, clock)
    gate.failures_in_a_row = POLICY.threshold - 1
    async with anyio.create_task_group() as tg:
        tg.start_soon(gate.failed, refused("down"))
        await anyio.lowlevel.checkpoint()
        tg.start_soon(gate.passage)
        await anyio.lowlevel.checkpoint()
        assert gate.is_open
        gate.answered()  # a slow request sent before the outage came back with an answer
    assert not gate.is_open


async def test_past_max_outage_every_waiter_and_every_later_request_gets_one_outage_error() -> None:
    clock = FakeClock()
    gate = make_gate(ScriptedProbe(down_for=10**6), clock)
    gate.failures_in_a_row = POLICY.threshold - 1
    opened = clock.now
    outcomes: list[str] = []

    async def waiter() -> None:
        try:
            await gate.passage()
        except OutageError as exc:
            outcomes.append(str(exc))

    async def failing() -> None:
        try:
            await gate.failed(refused())
        except OutageError as exc:
            outcomes.append(str(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(failing)
        await anyio.lowlevel.checkpoint()
        for _ in range(3):
            tg.start_soon(waiter)
    assert len(outcomes) == 4 and len(set(outcomes)) == 1
    assert clock.now - opened == pytest.approx(POLICY.max_outage)  # the last sleep is cut to the budget
    assert "unreachable for 1 min (--max-outage)" in outcomes[0]
    assert "nothing failed, a rerun resumes" in outcomes[0]
    assert "connection refused" in outcomes[0]
    with pytest.raises(OutageError):
        await gate.passage()


async def test_unreachable_at_start_opens_sooner_and_gives_up_within_the_start_budget() -> None:
    clock = FakeClock()
    gate = make_gate(ScriptedProbe(down_for=10**6), clock, answered=False)
    started = clock.now
    assert await gate.failed(refused()) is False
    with pytest.raises(OutageError, match="unreachable from the start"):
        await gate.failed(refused())  # the second in a row, before any answer: the start threshold
    assert clock.now - started == pytest.approx(POLICY.start_budget)


async def test_a_cancelled_prober_hands_over_to_the_next_waiter() -> None:
    clock = FakeClock()
    probe = ScriptedProbe(down_for=2)
    gate = make_gate(probe, clock)
    gate.failures_in_a_row = POLICY.threshold - 1
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as first:
            tg.start_soon(gate.failed, refused("down"))  # not the prober: that is the first waiter in line
            await anyio.lowlevel.checkpoint()
            first.cancel()
        tg.start_soon(gate.passage)
    assert not gate.is_open


def test_what_counts_as_an_outage_failure() -> None:
    assert is_outage_failure(refused())
    assert not is_outage_failure(StalledUploadError("upload stalled: no progress for 60 s"))
    assert is_outage_failure(TransferError("HTTP 503", ErrorClass.TRANSIENT, status=503))
    assert not is_outage_failure(TransferError("HTTP 429", ErrorClass.TRANSIENT, status=429))
    assert not is_outage_failure(TransferError("HTTP 503", ErrorClass.TRANSIENT, status=503, retry_after=2))
    assert not is_outage_failure(TransferError("not JSON", ErrorClass.TRANSIENT, status=200))
    assert not is_outage_failure(TransferError("HTTP 404", ErrorClass.NOT_FOUND, status=404))
