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
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from pipeline.commands.connect import connect
from pipeline.commands.submit import finish_stats, spec_at
from pipeline.config.settings import Settings
from pipeline.errors import ConfigError
from pipeline.flow.feed import PRODUCER_BATCH
from pipeline.flow.inputs import open_sources
from pipeline.flow.journey import WorkItem
from pipeline.flow.pool import Pipeline
from pipeline.flow.signals import watch_signals
from pipeline.ledger import FileRecord, Ledger, open_ledger
from pipeline.ledger.leases import Leases
from pipeline.ledger.postgres import EnqueueCounts, PostgresLedger
from pipeline.ledger.shared_rate import SharedRate
from pipeline.logs import log
from pipeline.observe.stats import RunStats
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.pathmap import PathMap
from pipeline.sources.rows import FileSpec, Rejection, Row

CLAIM_BATCH = 8  # files claimed per transaction: small, so that work spreads evenly over workers


def shared_ledger(ledger: Ledger, command: str) -> PostgresLedger:
    if not isinstance(ledger, PostgresLedger):
        raise ConfigError(f"{command} needs a shared ledger: --ledger postgresql://...")
    return ledger


@dataclass(slots=True)
class EnqueueReport:
    added: int = 0
    known: int = 0
    refused: int = 0
    rejected: int = 0


async def enqueue(sources: Sequence[str], settings: Settings) -> EnqueueReport:
    """Load every valid row of `sources` into the shared ledger (state pending), once."""
    rows = open_sources(sources, settings)
    report = EnqueueReport()
    run_id = f"enqueue-{uuid.uuid4().hex[:8]}"

    def next_batch() -> list[Row]:
        return list(itertools.islice(rows, PRODUCER_BATCH))

    async with open_ledger(settings.ledger, max_outage=settings.max_outage) as opened:
        ledger = shared_ledger(opened, "enqueue")
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
            counts: EnqueueCounts = await ledger.enqueue(specs, run_id)
            report.added += counts.added
            report.known += counts.known
            report.refused += len(counts.refused)
            for path, why in counts.refused:
                log.warning("not enqueued: %s: %s", path, why)
        await ledger.finish_run(run_id, {"enqueued": report.added, "known": report.known})
    return report


class ClaimFeed:
    """The producer of a `work` run: claims files, turns them into work items, heartbeats leases."""

    def __init__(self, pipeline: Pipeline, leases: Leases, path_map: PathMap) -> None:
        self.pipeline = pipeline
        self.leases = leases
        self.path_map = path_map
        # How soon a worker with nothing to claim looks again: soon, as it is usually the run's end.
        self.poll_seconds = min(0.5, max(0.1, leases.lease_seconds / 10))
        self.batch = max(1, min(CLAIM_BATCH, pipeline.settings.concurrency))
        self.held: dict[str, FileRecord] = {}  # claimed by this worker and not finished, by file key

    async def produce(self, send: MemoryObjectSendStream[WorkItem]) -> None:
        """Claim a small batch whenever the pool can take it; end when nothing is left for us."""
        pipeline = self.pipeline
        with pipeline.producer_scope, send:
            while not pipeline.stopping.is_set():
                records = await self.leases.claim(self.batch)
                if not records:
                    if await self.leases.others_unfinished() == 0:
                        return
                    await anyio.sleep(self.poll_seconds)  # others hold files: wait in case they die
                    continue
                for record in records:
                    pipeline.stats.rows_seen += 1
                    spec = await self.local_spec(record)
                    if spec is None:
                        await self.leases.release(record)
                        continue
                    self.held[record.file_key] = record
                    await send.send(WorkItem(spec, record.file_key, record.job_id))

    async def local_spec(self, record: FileRecord) -> FileSpec | None:
        """The row to work on, read where the file lives on this host; None (and the file marked
        changed, for a later run) when it is not there as it was enqueued."""
        local = self.path_map.local(record.path)
        host = self.leases.ledger.host
        try:
            st = await anyio.Path(local).stat()
        except OSError as exc:
            why = f"{local}: not found on host {host} ({exc.strerror}); check --path-map"
            await self.pipeline.ledger.mark_changed(record, why)
            self.pipeline.stats.changed += 1  # not done by this worker: exit 1, taken by a later one
            log.warning("%s", why)
            return None
        if st.st_size != record.size or st.st_mtime_ns != record.mtime_ns:
            why = f"{local}: changed since it was enqueued (size or mtime differ on host {host})"
            await self.pipeline.ledger.mark_changed(record, why)
            self.pipeline.stats.changed += 1  # not done by this worker: exit 1, taken by a later one
            log.warning("%s", why)
            return None
        return spec_at(record, Path(local))

    async def finished(self, item: WorkItem) -> None:
        """The pipeline is done with a file (created, failed, or stopped): give its claim back."""
        record = self.held.pop(item.key, None)
        if record is not None:
            await self.leases.release(record)

    async def heartbeat(self) -> None:
        """Extend the leases every third of their length, so a lease runs out only for the dead."""
        while True:
            await anyio.sleep(self.leases.lease_seconds / 3)
            held = await self.leases.heartbeat()
            if held < len(self.held):
                log.warning(
                    "%d of this worker's leases were taken over (it was too slow to heartbeat); the "
                    "job_ids stay unique, but raise --lease-timeout",
                    len(self.held) - held,
                )


async def work(settings: Settings, *, handle_signals: bool = False) -> RunStats:
    """Work on the shared ledger's files with the others until none is left; this worker's counters."""
    path_map = PathMap.parse(settings.path_map)
    stats: RunStats | None = None
    async with watch_signals(handle_signals) as signals, connect(settings) as conn:
        ledger = shared_ledger(conn.ledger, "work")
        for rate in (conn.rates.create, conn.rates.presign, conn.rates.read):
            # The --max-*-rps limits hold for the whole fleet, not per host.
            rate.shared = SharedRate(ledger, rate.name, rate.ceiling).take
        pipeline = Pipeline(settings, ledger, conn.client, conn.session, conn.rates, signals)
        worker = f"{ledger.host}:{os.getpid()}:{pipeline.stats.run_id}"
        leases = Leases(ledger, worker, settings.lease_timeout)
        feed = ClaimFeed(pipeline, leases, path_map)
        await leases.register()
        log.info("worker %s on %s (lease %g s)", worker, ledger.location, settings.lease_timeout)
        try:
            async with anyio.create_task_group() as beats:
                beats.start_soon(feed.heartbeat)
                stats = await pipeline.run_items(feed.produce, finished=feed.finished)
                beats.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await leases.release_all()
    return finish_stats(settings, stats, signals)
