"""`submit --wait`: poll job statuses with backoff until every job is finished or time is up."""

from __future__ import annotations

import time

import anyio

from pipeline.api.client import SlngClient
from pipeline.errors import TransferError
from pipeline.follow.common import FINISHED, counts_text
from pipeline.follow.status import StatusReport, refresh_statuses, status_summary
from pipeline.ledger import Ledger
from pipeline.logs import log
from pipeline.transport.retry import RetryPolicy


async def wait_for_jobs(
    ledger: Ledger,
    client: SlngClient,
    policy: RetryPolicy,
    wait_seconds: float,
    first_interval: float = 2.0,
    max_interval: float = 30.0,
) -> StatusReport:
    """Poll with backoff (2 s, x1.5, capped at 30 s) until no job is open or `wait_seconds` pass.

    A refresh that fails on a transient error (after its own retries) does not end the wait.
    """
    interval = first_interval
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            report = await refresh_statuses(ledger, client, policy)
        except TransferError as exc:
            if not exc.is_transient:
                raise
            log.warning("status refresh failed, will try again: %s", exc)
            report = await status_summary(ledger)
        else:
            if report.open_jobs == 0:
                return report
        left = deadline - time.monotonic()
        if left <= 0:
            return report
        open_counts = {s: n for s, n in report.by_status.items() if s not in FINISHED}
        finished = {s: n for s, n in report.by_status.items() if s in FINISHED}
        log.info(
            "waiting for %d open jobs (%s)%s",
            report.open_jobs,
            counts_text(open_counts),
            f"; {sum(finished.values())} finished ({counts_text(finished)})" if finished else "",
        )
        await anyio.sleep(min(interval, left))
        interval = min(interval * 1.5, max_interval)
