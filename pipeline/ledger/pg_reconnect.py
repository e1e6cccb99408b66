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
import logging
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

# The pool warns of each connection it discards and each reconnection that fails: during a restart,
# dozens of lines saying what our one line says. Its errors still show.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


class ServerWatch:
    """Whether the ledger's server is lost, since when, for every operation of one ledger: the
    outage is told once when it begins and once when it ends, however many operations wait."""

    def __init__(self, location: str, max_outage: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.location = location
        self.max_outage = max_outage
        self.clock = clock
        self.lost_since: float | None = None

    def lost(self, exc: BaseException, tries: int) -> float | None:
        """Seconds to wait before an operation's next try (its `tries`-th failure); None once the
        server has been lost for `max_outage`."""
        now = self.clock()
        if self.lost_since is None:
            self.lost_since = now
            log.warning(
                "ledger %s: connection lost (%s); retrying for up to %g s (--max-outage)",
                self.location,
                first_line(exc),
                self.max_outage,
            )
        left = self.lost_since + self.max_outage - now
        if left <= 0:
            return None
        cap = min(MAX_DELAY, FIRST_DELAY * 2 ** (tries - 1))
        return min(left, random.uniform(cap / 2, cap))

    def back(self) -> None:
        if self.lost_since is not None:
            log.warning(
                "ledger %s: reconnected after %.1f s; nothing was lost",
                self.location,
                self.clock() - self.lost_since,
            )
            self.lost_since = None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


async def run_pooled(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]],
    work: Callable[[psycopg.AsyncConnection[Row]], Awaitable[T]],
    watch: ServerWatch,
    connect_timeout: float,
) -> T:
    """`work` on a pooled connection, run again whole on a fresh one while the server is lost.
    The last error is raised once the server has been lost for `max_outage` seconds."""
    tries = 0
    while True:
        try:
            async with pool.connection(timeout=connect_timeout) as conn:
                result = await work(conn)
        except LOST as exc:
            tries += 1
            if watch.lost_since is None:
                with contextlib.suppress(*LOST):  # the idle connections died with this one: drop them
                    await pool.check()
            delay = watch.lost(exc, tries)
            if delay is None:
                raise
            await anyio.sleep(delay)
            continue
        watch.back()
        return result


def run_blocking(work: Callable[[], T], watch: ServerWatch, reset: Callable[[], None]) -> T:
    """`work` (a read, in a worker thread) run again while the server is lost; `reset` drops the
    broken connection between tries."""
    tries = 0
    while True:
        try:
            result = work()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            reset()
            tries += 1
            delay = watch.lost(exc, tries)
            if delay is None:
                raise
            time.sleep(delay)
            continue
        watch.back()
        return result
