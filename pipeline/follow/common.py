"""What the follow-up commands share: the bounded pool that stops on a refused key or a broken
ledger, and how a job's status and message are read and compared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

import anyio

from pipeline.api.models import TERMINAL_STATUSES, BatchJob
from pipeline.errors import AuthenticationError, LedgerWriteError
from pipeline.ledger import FileRecord

T = TypeVar("T")

NOT_FOUND = "NOT_FOUND"  # ledger only: the server answered 404 for a job it once acknowledged
RETRY_REASON = "job FAILED on the server"  # the history reason retry-failed records
FINISHED = frozenset({*TERMINAL_STATUSES, NOT_FOUND})  # nothing more to wait for


async def for_each(items: Iterable[T], fn: Callable[[T], Awaitable[None]], concurrency: int) -> None:
    """Run `fn` over `items` with a bounded pool; an AuthenticationError or LedgerWriteError stops
    all and is re-raised as itself (not wrapped in an exception group), so callers and the CLI see
    the documented error."""
    iterator = iter(items)
    refused: list[AuthenticationError | LedgerWriteError] = []

    async with anyio.create_task_group() as tg:

        async def worker() -> None:
            for item in iterator:  # shared: each item is taken by exactly one worker
                try:
                    await fn(item)
                except (AuthenticationError, LedgerWriteError) as exc:
                    refused.append(exc)
                    tg.cancel_scope.cancel()
                    return

        for _ in range(max(1, concurrency)):
            tg.start_soon(worker)
    if refused:
        raise refused[0]


def job_message(job: BatchJob) -> str | None:
    return job.error_message.message if job.error_message else None


def status_changed(record: FileRecord, status: str, message: str | None) -> bool:
    return record.job_status != status or record.job_error != message


def counts_text(counts: Mapping[str, int]) -> str:
    """Counts by status as a person reads them: "IN_PROGRESS 3, QUEUED 2" (biggest first)."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count}" for name, count in ranked if count) or "none"
