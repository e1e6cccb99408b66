"""A request rate shared by every host of a fleet, kept in the PostgreSQL ledger.

Each worker limits itself to `--max-create-rps` (and the presign and read rates) already; with N
hosts that would be N times the limit. This bucket makes the limit the fleet's: one row per
operation class in `rate_buckets`, where every request takes a token in one atomic UPDATE. Tokens
refill at `rate` per second (by the server's clock) up to a burst of one second's worth; a caller
that finds the bucket empty still takes its token (the balance goes negative) and waits until it is
due, so callers are served in order and the fleet never goes faster than `rate`.
"""

from __future__ import annotations

import anyio

from pipeline.ledger.postgres import Connection, PostgresLedger


class SharedRate:
    """`await rate.take()` before each request of this class, on every host."""

    def __init__(self, ledger: PostgresLedger, name: str, rate: float) -> None:
        self.ledger = ledger
        self.name = name
        self.rate = rate
        self.burst = max(rate, 1.0)

    async def take(self) -> None:
        async def take_token(conn: Connection) -> float:
            cursor = await conn.execute(
                "INSERT INTO rate_buckets(name, tokens, updated_at) VALUES (%(name)s, %(burst)s - 1,"
                " clock_timestamp())"
                " ON CONFLICT (name) DO UPDATE SET tokens = LEAST(%(burst)s, rate_buckets.tokens"
                " + %(rate)s * extract(epoch FROM clock_timestamp() - rate_buckets.updated_at)) - 1,"
                " updated_at = clock_timestamp()"
                " RETURNING tokens",
                {"name": self.name, "burst": self.burst, "rate": self.rate},
            )
            row = await cursor.fetchone()
            return float(row[0]) if row is not None else 0.0

        # Run again after a lost server, a token taken unheard is taken twice: a moment's slowing.
        balance = await self.ledger.run(take_token)
        if balance < 0:
            await anyio.sleep(-balance / self.rate)  # our token is due once the debt before it is paid
