"""Riding a shared ledger through a database restart or failover, instead of ending every worker.

A restart drops every connection: the pooled ones break, new ones are refused until the server is
back. Each ledger operation is one short unit of work on one connection, written so that running
it twice does what running it once does (a state set, not stepped; an insert that tolerates its
own earlier success). So an operation that loses its connection is simply run again, whole, on a
fresh one, with backoff, until the server answers or the outage has lasted `max_outage` seconds;
only then is it a LedgerWriteError (the run stops, what was committed is kept).

Meanwhile nothing else stops: uploads in flight go on and wait only when they need the ledger.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pipeline.logs import log

T = TypeVar("T")
Row = tuple[object, ...]

# What a lost server looks like: a broken or refused connection, a server shutting down (both
# OperationalError), a closed connection (InterfaceError), or no connection from the pool in time.
LOST: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
FIRST_DELAY = 0.1
MAX_DELAY = 5.0


class Outage:
    """One run of failures of one operation: when it began, and how long to wait before the next try."""

    def __init__(self, location: str, max_outage: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.location = location
        self.clock = clock
        self.ends = clock() + max_outage
        self.max_outage = max_outage
        self.tries = 0

    def next_delay(self, exc: BaseException) -> float | None:
        """Seconds to wait before the next try; None when the outage has lasted too long."""
        self.tries += 1
        left = self.ends - self.clock()
        if left <= 0:
            return None
        if self.tries == 1:
            log.warning(
                "ledger %s: connection lost (%s); retrying for up to %g s",
                self.location,
                first_line(exc),
                self.max_outage,
            )
        cap = min(MAX_DELAY, FIRST_DELAY * 2 ** (self.tries - 1))
        return min(left, random.uniform(cap / 2, cap))

    def over(self) -> None:
        if self.tries > 1:
            log.warning("ledger %s: reconnected after %d tries", self.location, self.tries)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


async def run_pooled(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]],
    work: Callable[[psycopg.AsyncConnection[Row]], Awaitable[T]],
    location: str,
    max_outage: float,
    connect_timeout: float,
) -> T:
    """`work` on a pooled connection, run again whole on a fresh one while the server is lost.
    The last error is raised once the outage has lasted `max_outage` seconds."""
    outage: Outage | None = None
    while True:
        try:
            async with pool.connection(timeout=connect_timeout) as conn:
                result = await work(conn)
        except LOST as exc:
            if outage is None:
                outage = Outage(location, max_outage)
                with contextlib.suppress(*LOST):  # the idle connections died with this one: drop them
                    await pool.check()
            delay = outage.next_delay(exc)
            if delay is None:
                raise
            await anyio.sleep(delay)
            continue
        if outage is not None:
            outage.over()
        return result


def run_blocking(work: Callable[[], T], location: str, max_outage: float, reset: Callable[[], None]) -> T:
    """`work` (a read, in a worker thread) run again while the server is lost; `reset` drops the
    broken connection between tries."""
    outage: Outage | None = None
    while True:
        try:
            result = work()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            reset()
            outage = outage or Outage(location, max_outage)
            delay = outage.next_delay(exc)
            if delay is None:
                raise
            time.sleep(delay)
            continue
        if outage is not None:
            outage.over()
        return result
