"""Where a run's files come from: one protocol, one implementation per kind of producer.

- `SourceRows`: the rows of manifests, folders and stdin (submit), skips decided a batch at a time;
- `ListedWork`: files decided up front from the ledger (retry-failed);
- `flow.claims.ClaimFeed`: files claimed from a shared ledger, a few at a time (work).

The pool runs `produce` inside the run's producer scope (a stop cancels it) and closes the channel
when it returns; `finished` hears of every item the pool is done with, whatever became of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from pipeline.flow.context import RunContext
from pipeline.flow.feed import PRODUCER_BATCH, RowFeed
from pipeline.flow.journey import WorkItem
from pipeline.ledger import Glance
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.rows import FileSpec, Rejection, Row


class WorkSource(Protocol):
    async def produce(self, run: RunContext, send: MemoryObjectSendStream[WorkItem]) -> None:
        """Send work items until there are no more (or the run stops); record rejections."""
        ...

    async def finished(self, item: WorkItem) -> None:
        """The pool is done with `item` (created, failed, skipped or stopped)."""
        ...


class SourceRows:
    """The rows of the command's sources, read on a thread of their own (`flow.feed`), looked up in
    the ledger a batch per query, so that a rerun of a finished manifest queues nothing."""

    def __init__(self, rows: Iterator[Row], *, trickle: bool = False) -> None:
        # A source that may block between rows (stdin) hands each row over as soon as it is read.
        self.feed = RowFeed(rows, chunk=1 if trickle else 64)

    async def produce(self, run: RunContext, send: MemoryObjectSendStream[WorkItem]) -> None:
        while not run.stopping.is_set():
            # Abandoned on stop: a thread blocked reading stdin must not hold the run open.
            batch = await anyio.to_thread.run_sync(self._next_batch, run, abandon_on_cancel=True)
            if not batch:
                return
            now_ns = time.time_ns()
            for row, key, known in batch:
                if run.stopping.is_set():
                    return
                if isinstance(row, Rejection):
                    run.stats.row_seen()
                    await run.reject(row)
                    continue
                run.stats.row_seen(row.upload_bytes)
                if known is None:
                    verdict = run.rules.verdict(None, None, mtime_ns=row.mtime_ns, now_ns=now_ns)
                else:
                    verdict = run.rules.verdict(
                        known.state,
                        known.error_class,
                        job_status=known.job_status,
                        mtime_ns=row.mtime_ns,
                        now_ns=now_ns,
                    )
                if run.skips(verdict, row, known):
                    continue
                job_id = known.job_id if known is not None else derive_job_id(key, 0, row.job_id)
                await send.send(WorkItem(row, key, job_id))

    def _next_batch(self, run: RunContext) -> list[tuple[Row, str, Glance | None]]:
        """In a worker thread: take the rows read so far (at most a batch) and look them up."""
        batch = self.feed.next_batch(PRODUCER_BATCH)
        keys = [file_key(row) if isinstance(row, FileSpec) else "" for row in batch]
        known = run.ledger.glance([k for k in keys if k])
        return [(row, key, known.get(key)) for row, key in zip(batch, keys, strict=True)]

    async def finished(self, item: WorkItem) -> None:
        return None


class ListedWork:
    """Files decided up front (retry-failed's renewed jobs), and the rejections among them, in turn."""

    def __init__(self, work: Sequence[WorkItem | Rejection]) -> None:
        self.work = work

    async def produce(self, run: RunContext, send: MemoryObjectSendStream[WorkItem]) -> None:
        for item in self.work:
            if run.stopping.is_set():
                return
            if isinstance(item, Rejection):
                run.stats.row_seen()
                await run.reject(item)
            else:
                run.stats.row_seen(item.spec.upload_bytes)
                await send.send(item)

    async def finished(self, item: WorkItem) -> None:
        return None
