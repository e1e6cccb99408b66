"""A request rate shared by every host of a fleet, kept in the PostgreSQL ledger, that follows what
the server accepts (the fleet-wide form of `transport.cubic`; the arithmetic is
`transport.fleet_rate`, this module only reads and writes the row).

Each worker limits itself to `--max-create-rps` (and the presign and read rates) already; with N
hosts that would be N times the limit. This bucket makes the limit the fleet's: one row per
operation class in `rate_buckets`, where every request takes a token in one atomic UPDATE. Tokens
refill at the fleet's rate (by the server's clock) up to a burst of one second's worth at that rate;
a caller that finds the bucket empty still takes its token (the balance goes negative) and waits
until it is due, so callers are served in order and the fleet never goes faster than the rate.

The rate is the ceiling until the server throttles any worker. Then that worker writes the new
estimate into the row (the fleet's acceptances since the last estimate, per second, which every
worker reports with its next take) and empties the bucket (the server has just said it is empty);
every worker reads the estimate back with each take: all of them follow one curve, so the fleet
together stays near what the server accepts.
"""

from __future__ import annotations

from typing import Any

import anyio

from pipeline.ledger.base import SharedLedger
from pipeline.ledger.postgres import Connection
from pipeline.transport.fleet_rate import FleetShare, RowSeen, TakeOrder

DUE_SLACK_SECONDS = 0.001

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
    "UPDATE rate_buckets SET w_max = %(w_max)s, cut_at = clock_timestamp(), accepted_at_cut = %(total)s,"
    " tokens = LEAST(tokens, 0)"
    " WHERE name = %(name)s"
    " AND (cut_at IS NULL OR cut_at < clock_timestamp() - make_interval(secs => %(echo)s))"
)


def _row(values: Any) -> RowSeen:
    balance, w_max, since_cut, since_start, total, total_at_cut = values
    return RowSeen(
        balance=float(balance),
        w_max=None if w_max is None else float(w_max),
        since_cut=None if since_cut is None else float(since_cut),
        since_start=float(since_start),
        accepted_total=float(total),
        accepted_at_cut=float(total_at_cut),
    )


class SharedRate:
    """`await rate.take()` before each request of this class, on every host; `accepted()` and
    `throttled()` report its outcome (sent to the row with the next take)."""

    def __init__(self, ledger: SharedLedger, name: str, ceiling: float, floor: float = 1.0) -> None:
        self.ledger = ledger
        self.name = name
        self.share = FleetShare(ceiling=ceiling, floor=floor)

    @property
    def rate(self) -> float:
        """The fleet's rate as of the last take."""
        return self.share.rate

    def accepted(self) -> None:
        self.share.accepted()

    def throttled(self) -> None:
        self.share.throttled()

    async def take(self) -> None:
        order = self.share.order()

        async def take_token(conn: Connection) -> RowSeen:
            return await self._take(conn, order)

        # Run again after a lost server, a token taken unheard is taken twice: a moment's slowing.
        row = await self.ledger.run(take_token)
        self.share.follow(row.w_max, row.since_cut)
        waited = 0.0
        # Our token is due once the debt before it is paid, at the rate as it is by then.
        while (due := self.share.wait(row.balance)) - waited > DUE_SLACK_SECONDS:
            await anyio.sleep(due - waited)
            waited = due

    async def _take(self, conn: Connection, order: TakeOrder) -> RowSeen:
        params = {"name": self.name, "burst": order.burst, "rate": order.rate, "accepted": order.accepted}
        values = await (await conn.execute(TAKE, params)).fetchone()
        assert values is not None
        row = _row(values)
        estimate = self.share.estimate(row, order.refused_ago) if order.throttled else None
        if estimate is None:
            return row
        cut = {
            "w_max": estimate,
            "total": row.accepted_total,
            "name": self.name,
            "echo": self.share.echo_seconds,
        }
        await conn.execute(CUT, cut)
        return row.cut(estimate)
