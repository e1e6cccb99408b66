"""A `work` run's files: claimed from the shared ledger a few at a time, beside other workers.

Claims are short transactions (pipeline.ledger.leases): a file is claimed, its lease recorded and
committed before any upload, and given back when the pool is done with it. A heartbeat extends the
leases; a worker that dies loses them after --lease-timeout, and the others take its files over.
"""

from __future__ import annotations

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from pipeline.flow.context import RunContext
from pipeline.flow.journey import WorkItem
from pipeline.flow.ledger_work import local_file
from pipeline.ledger import FileRecord
from pipeline.ledger.leases import Leases
from pipeline.logs import log
from pipeline.sources.pathmap import PathMap

CLAIM_BATCH = 8  # files claimed per transaction: small, so that work spreads evenly over workers


class ClaimFeed:
    """The producer of a `work` run: claims files, turns them into work items, heartbeats leases."""

    def __init__(self, leases: Leases, path_map: PathMap, *, concurrency: int) -> None:
        self.leases = leases
        self.path_map = path_map
        # How soon a worker with nothing to claim looks again: soon, as it is usually the run's end.
        self.poll_seconds = min(0.5, max(0.1, leases.lease_seconds / 10))
        self.batch = max(1, min(CLAIM_BATCH, concurrency))
        self.held: dict[str, FileRecord] = {}  # claimed by this worker and not finished, by file key

    async def produce(self, run: RunContext, send: MemoryObjectSendStream[WorkItem]) -> None:
        """Claim a small batch whenever the pool can take it; end when nothing is left for us."""
        while not run.stopping.is_set():
            records = await self.leases.claim(self.batch)
            if not records:
                if await self.leases.others_unfinished() == 0:
                    return
                await anyio.sleep(self.poll_seconds)  # others hold files: wait in case they die
                continue
            for record in records:
                found = local_file(record, self.path_map, since="enqueued", host=self.leases.ledger.host)
                run.stats.row_seen(0 if isinstance(found, str) else found.upload_bytes)
                if isinstance(found, str):
                    # Not as it was enqueued, here: marked for a later run (or another host), and
                    # not done by this worker, so it exits 1.
                    await run.ledger.mark_changed(record, found)
                    run.stats.changed += 1
                    log.warning("%s: %s", record.path, found)
                    await self.leases.release(record)
                    continue
                self.held[record.file_key] = record
                await send.send(WorkItem(found, record.file_key, record.job_id))

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
