"""What a real SIGINT/SIGTERM does in each phase of a command (pipeline.flow.signals): handed to the
pool while it runs, ends a stoppable step, is noted elsewhere; a second ends the command."""

from __future__ import annotations

import os
import signal

import anyio
import anyio.lowlevel
import pytest

from pipeline.errors import ConfigError
from pipeline.flow.signals import SignalWatch, watch_signals

pytestmark = pytest.mark.anyio


async def _send(signum: signal.Signals, watch: SignalWatch, count: int) -> None:
    """Signal this process and wait until the watch has received `count` signals in all."""
    os.kill(os.getpid(), signum)
    with anyio.fail_after(5):
        while watch._count < count:  # noqa: ASYNC110 (the receiver task counts; nothing to wait on)
            await anyio.sleep(0.005)


async def test_outside_any_step_a_signal_is_noted_and_the_step_finishes() -> None:
    finished = False
    async with watch_signals(True) as watch:
        await _send(signal.SIGTERM, watch, 1)
        await anyio.sleep(0.05)  # not cancelled: closing the ledger must be allowed to finish
        finished = True
    assert finished and watch.caught is signal.SIGTERM


async def test_a_second_signal_ends_the_command_at_once() -> None:
    reached = False
    async with watch_signals(True) as watch:
        await _send(signal.SIGINT, watch, 1)
        await _send(signal.SIGTERM, watch, 2)
        await anyio.sleep(5)
        reached = True
    assert not reached and watch.caught is signal.SIGINT  # the first is the one reported


async def test_a_second_signal_ends_the_command_even_inside_a_step_that_ignores_the_first() -> None:
    reached = False
    async with watch_signals(True) as watch:
        with watch.stoppable():
            with anyio.CancelScope(shield=True):  # a step stuck where a cancel does not reach
                await _send(signal.SIGTERM, watch, 1)
                await _send(signal.SIGTERM, watch, 2)
            await anyio.sleep(5)
        reached = True
    assert not reached


async def test_a_signal_ends_a_stoppable_step_and_the_next_is_skipped() -> None:
    steps: list[str] = []
    async with watch_signals(True) as watch:
        with watch.stoppable():
            await _send(signal.SIGTERM, watch, 1)
            await anyio.sleep(5)
            steps.append("waited")
        with watch.stoppable():
            await anyio.lowlevel.checkpoint()
            steps.append("fetched")
        steps.append("closed")
    assert steps == ["closed"]


async def test_the_pool_takes_signals_while_it_runs_and_one_that_came_before_at_once() -> None:
    handed: list[signal.Signals] = []
    async with watch_signals(True) as watch:
        await _send(signal.SIGINT, watch, 1)  # while connecting
        with watch.handled_by(handed.append):
            await _send(signal.SIGTERM, watch, 2)
            await _send(signal.SIGTERM, watch, 3)  # the pool decides: its second is "stop now"
        assert handed == [signal.SIGINT, signal.SIGTERM, signal.SIGTERM]


async def test_the_blocks_own_error_comes_out_as_itself() -> None:
    with pytest.raises(ConfigError, match="bad ledger"):
        async with watch_signals(True):
            raise ConfigError("bad ledger")


async def test_without_signal_handling_nothing_is_received() -> None:
    async with watch_signals(False) as watch:
        with watch.stoppable() as scope:
            await anyio.lowlevel.checkpoint()
        assert not scope.cancel_called and watch.caught is None
