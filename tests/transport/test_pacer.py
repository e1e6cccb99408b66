"""The pacer on a fake clock: slots one interval apart, a burst only of idle time, none after a cut."""

from __future__ import annotations

import pytest

from pipeline.transport.pacer import Pacer


def test_the_first_second_goes_at_the_rate_not_at_once() -> None:
    pacer = Pacer()
    waits = [pacer.reserve(0.1, now=5.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_idle_time_is_made_up_as_a_burst_of_at_most_one_second() -> None:
    pacer = Pacer()
    pacer.reserve(0.1, now=0.0)
    waits = [pacer.reserve(0.1, now=60.0) for _ in range(12)]
    assert waits[:10] == [0.0] * 10 and waits[10:] == pytest.approx([0.0, 0.1])


def test_emptied_no_burst_is_left() -> None:
    pacer = Pacer()
    pacer.reserve(0.1, now=0.0)
    pacer.empty(now=60.0)
    assert [pacer.reserve(0.25, now=60.0) for _ in range(3)] == pytest.approx([0.0, 0.25, 0.5])


def test_a_longer_slot_owed_later_waits_behind_the_booked_ones() -> None:
    """A request that booked 0.1 s and finds the rate has halved books 0.1 s more, after the others."""
    pacer = Pacer()
    assert pacer.reserve(0.1, now=0.0) == 0.0
    assert pacer.reserve(0.1, now=0.0) == pytest.approx(0.1)
    assert pacer.reserve(0.1, now=0.0) == pytest.approx(0.2)
