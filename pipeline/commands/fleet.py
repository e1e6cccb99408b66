"""`slng-bulk enqueue` and `slng-bulk work`: many hosts draining one manifest through a shared ledger.

`enqueue` loads the rows of its sources into the PostgreSQL ledger once (streamed, in batched
inserts; a file already there is left as it is). Each `work` process then claims a few files at a
time (pipeline.ledger.leases), works on them with the same per-file journey as `submit`, and
releases each claim when the file is finished. A heartbeat keeps its leases; a worker that dies
loses them after `--lease-timeout` and the others take its files over, from the recorded state.

A worker ends when nothing is left that it could take: every file is done, failed for good, or
failed since it started. While other workers still hold files it waits, so that it can take them
over should their holders die.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Unpack

import anyio

from pipeline.commands.connect import Connection
from pipeline.commands.run import RunHooks, run_pool
from pipeline.config.settings import Settings
from pipeline.flow.claims import ClaimFeed
from pipeline.flow.context import RunContext
from pipeline.flow.feed import PRODUCER_BATCH
from pipeline.flow.inputs import open_sources
from pipeline.flow.pool import Pool
from pipeline.ledger import Ledger, open_ledger, require_shared_ledger
from pipeline.ledger.base import SharedLedger
from pipeline.ledger.leases import Leases
from pipeline.ledger.postgres import EnqueueCounts
from pipeline.ledger.shared_rate import SharedRate
from pipeline.logs import log
from pipeline.observe.stats import RunStats
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.pathmap import PathMap
from pipeline.sources.rows import FileSpec, Rejection, Row

CLAIM_BATCH = 8  # files claimed per transaction: small, so that work spreads evenly over workers


def shared_ledger(ledger: Ledger) -> SharedLedger:
    """The ledger's shared side: `enqueue` and `work` refuse any other location before they open
    it (require_shared_ledger, one line saying what to set), so it is a PostgreSQL one."""
    shared = ledger.shared()
    assert shared is not None, "require_shared_ledger lets only a shared ledger through"
    return shared


@dataclass(slots=True)
class EnqueueReport:
    """What `enqueue` did, in files: added to the shared ledger, already there (left as they were),
    refused by the ledger (another identity holds the job id, each logged) and rows rejected."""

    added: int = 0
    known: int = 0
    refused: int = 0
    rejected: int = 0

    def count(self, batch: EnqueueCounts) -> None:
        self.added += batch.added
        self.known += batch.known
        self.refused += len(batch.refused)


async def enqueue(sources: Sequence[str], settings: Settings) -> EnqueueReport:
    """Load every valid row of `sources` into the shared ledger (state pending), once."""
    require_shared_ledger(settings.ledger, "enqueue")  # before any source is read
    rows = open_sources(sources, settings)
    report = EnqueueReport()
    run_id = f"enqueue-{uuid.uuid4().hex[:8]}"

    def next_batch() -> list[Row]:
        return list(itertools.islice(rows, PRODUCER_BATCH))

    async with open_ledger(settings.ledger, max_outage=settings.max_outage) as ledger:
        shared = shared_ledger(ledger)
        await ledger.start_run(run_id)
        while batch := await anyio.to_thread.run_sync(next_batch):
            specs: list[tuple[FileSpec, str, str]] = []
            for row in batch:
                if isinstance(row, Rejection):
                    report.rejected += 1
                    await ledger.reject(run_id, row)
                    log.warning("rejected: %s", row.message())
                    continue
                key = file_key(row)
                specs.append((row, key, derive_job_id(key, 0, row.job_id)))
            counts = await shared.enqueue(specs, run_id)
            report.count(counts)
            for path, why in counts.refused:
                log.warning("not enqueued: %s: %s", path, why)
        await ledger.finish_run(run_id, {"enqueued": report.added, "known": report.known})
    return report


async def work(settings: Settings, **hooks: Unpack[RunHooks]) -> RunStats:
    """Work on the shared ledger's files with the others until none is left; this worker's counters.
    `hooks` are `submit`'s."""
    require_shared_ledger(settings.ledger, "work")  # before the lock, the ledger, the API
    path_map = PathMap.parse(settings.path_map)

    async def claim_and_run(conn: Connection, run: RunContext) -> RunStats:
        ledger = shared_ledger(conn.ledger)
        for rate in (conn.rates.create, conn.rates.presign, conn.rates.read):
            # The --max-*-rps limits hold for the whole fleet, not per host.
            rate.shared = SharedRate(ledger, rate.name, rate.ceiling, rate.floor)
        worker = f"{ledger.host}:{os.getpid()}:{run.stats.run_id}"
        leases = Leases(ledger, worker, settings.lease_timeout)
        feed = ClaimFeed(leases, path_map, concurrency=settings.concurrency)
        await leases.register()
        log.info("worker %s on %s (lease %g s)", worker, ledger.location, settings.lease_timeout)
        try:
            async with anyio.create_task_group() as beats:
                beats.start_soon(feed.heartbeat)
                stats = await Pool(run).run_source(feed)
                beats.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await leases.release_all()
        return stats

    return await run_pool(settings, hooks, claim_and_run)
