"""A request rate shared by every host of a fleet, kept in the PostgreSQL ledger, that follows what
the server accepts (the fleet-wide form of `transport.cubic`).

Each worker limits itself to `--max-create-rps` (and the presign and read rates) already; with N
hosts that would be N times the limit. This bucket makes the limit the fleet's: one row per
operation class in `rate_buckets`, where every request takes a token in one atomic UPDATE. Tokens
refill at the fleet's rate (by the server's clock) up to a burst of one second's worth; a caller
that finds the bucket empty still takes its token (the balance goes negative) and waits until it is
due, so callers are served in order and the fleet never goes faster than the rate.

The rate is the ceiling until the server throttles any worker. Then that worker writes the cubic's
new estimate into the row (the fleet's acceptances since the last estimate, per second, which every
worker reports with its next take), and every worker reads it back with each take: all of them
follow one curve, so the fleet together stays near what the server accepts.
"""

from __future__ import annotations

from typing import Any

import anyio
import psycopg

from pipeline.ledger.base import SharedLedger
from pipeline.ledger.postgres import Connection
from pipeline.transport.cubic import WINDOW_SECONDS, CubicRate

TAKE = (
    "INSERT INTO rate_buckets(name, tokens, updated_at, accepted_total) VALUES (%(name)s, %(burst)s - 1,"
    " clock_timestamp(), %(accepted)s)"
    " ON CONFLICT (name) DO UPDATE SET tokens = LEAST(%(burst)s, rate_buckets.tokens"
    " + %(rate)s * extract(epoch FROM clock_timestamp() - rate_buckets.updated_at)) - 1,"
    " updated_at = clock_timestamp(), accepted_total = rate_buckets.accepted_total + %(accepted)s"
    " RETURNING tokens, w_max, extract(epoch FROM clock_timestamp() - cut_at),"
    " extract(epoch FROM clock_timestamp() - started_at), accepted_total, accepted_at_cut"
)
CUT = (
    "UPDATE rate_buckets SET w_max = %(w_max)s, cut_at = clock_timestamp(), accepted_at_cut = %(total)s"
    " WHERE name = %(name)s"
    " AND (cut_at IS NULL OR cut_at < clock_timestamp() - make_interval(secs => %(echo)s))"
)


class SharedRate:
    """`await rate.take()` before each request of this class, on every host; `accepted()` and
    `throttled()` report its outcome (sent to the row with the next take)."""

    def __init__(self, ledger: SharedLedger, name: str, ceiling: float, floor: float = 1.0) -> None:
        self.ledger = ledger
        self.name = name
        self.ceiling = ceiling
        self.burst = max(ceiling, 1.0)
        self._curve = CubicRate(ceiling=ceiling, floor=min(ceiling, floor))
        self._since_cut = 0.0  # seconds, by the server's clock, at the last take
        self.rate = ceiling  # the fleet's rate as of the last take
        self._accepted = 0  # this host's acceptances not yet reported
        self._throttled = False

    def accepted(self) -> None:
        self._accepted += 1

    def throttled(self) -> None:
        self._throttled = True

    async def take(self) -> None:
        reported, self._accepted = self._accepted, 0
        throttled, self._throttled = self._throttled, False
        params = {"name": self.name, "burst": self.burst, "rate": self.rate, "accepted": reported}

        async def take_token(conn: Connection) -> tuple[Any, float | None, float | None]:
            row = await (await conn.execute(TAKE, params)).fetchone()
            assert row is not None
            balance, w_max, since_cut, since_start, total, total_at_cut = row
            if throttled:
                w_max, since_cut = await self._cut(conn, w_max, since_cut, since_start, total, total_at_cut)
            return balance, w_max, since_cut

        # Run again after a lost server, a token taken unheard is taken twice: a moment's slowing.
        balance, w_max, since_cut = await self.ledger.run(take_token)
        self._follow(w_max, since_cut)
        if balance < 0:
            await anyio.sleep(-float(balance) / self.rate)  # our token is due once the debt before it is paid

    async def _cut(
        self,
        conn: psycopg.AsyncConnection[Any],
        w_max: float | None,
        since_cut: float | None,
        since_start: float,
        total: float,
        total_at_cut: float,
    ) -> tuple[float | None, float | None]:
        """Write the new estimate: what the fleet had accepted per second since the last one (or
        since the start), unless another host just cut (the same burst of refusals)."""
        if since_cut is not None and float(since_cut) < self._curve.echo_seconds:
            return w_max, since_cut
        span = float(since_cut) if since_cut is not None else float(since_start)
        estimate = (float(total) - float(total_at_cut)) / max(span, WINDOW_SECONDS)
        if since_cut is not None and float(since_cut) < self._curve.return_seconds:
            estimate = min(estimate, self.rate)  # refused again below the last estimate: too high
        estimate = min(max(estimate, self._curve.floor), self.ceiling)
        params = {"w_max": estimate, "total": total, "name": self.name, "echo": self._curve.echo_seconds}
        await conn.execute(CUT, params)
        return estimate, 0.0

    def _follow(self, w_max: float | None, since_cut: float | None) -> None:
        """The fleet's rate now, from the row's curve (every host computes the same one)."""
        if w_max is None or since_cut is None:
            self.rate = self.ceiling
            return
        self._curve.w_max = float(w_max)
        self._curve.cut_at = -float(since_cut)
        self.rate = self._curve.rate(0.0)
