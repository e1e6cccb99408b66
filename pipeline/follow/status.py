"""`status`: bring the server status of every unfinished job into the ledger.

Few open jobs: one GET each. Many: page the job list (status and date filters), then GET only what
the list did not show. The ledger is updated as answers arrive, so an interrupted refresh keeps what
it learnt.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from dataclasses import dataclass, field

from pipeline.api.client import SlngClient
from pipeline.api.models import TERMINAL_STATUSES
from pipeline.errors import AuthenticationError, TransferError
from pipeline.follow.common import FINISHED, NOT_FOUND, for_each, job_message, status_changed
from pipeline.follow.job_pages import job_pages
from pipeline.ledger import FileRecord, FileState, Ledger
from pipeline.logs import log
from pipeline.transport.retry import RetryPolicy, retry_transient

LIST_THRESHOLD = 25  # more open jobs than this: page the job list instead of one GET per job
LIST_TERMINAL = ("DONE", "FAILED", "DELETED")
LIST_OPEN = ("QUEUED", "IN_PROGRESS", "DECODING")  # POST_PROCESSING cannot be listed: GET finds it
CLOCK_MARGIN_SECONDS = 3600  # the date filter's slack for clock skew between us and the server
GET_CONCURRENCY = 16


@dataclass
class StatusReport:
    by_status: Counter[str] = field(default_factory=Counter)
    refreshed: int = 0  # open jobs asked about
    listed: bool = False  # the job list was paged (many open jobs)
    failed_jobs: list[tuple[str, str, str]] = field(default_factory=list)  # (path, job_id, message)
    missing_jobs: list[tuple[str, str]] = field(default_factory=list)  # (path, job_id): 404 now
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, message): could not ask

    @property
    def open_jobs(self) -> int:
        """Jobs still worth waiting for (unknown statuses count as open; a 404 does not)."""
        return sum(n for status, n in self.by_status.items() if status not in FINISHED)


async def status_summary(ledger: Ledger) -> StatusReport:
    """Counts by server status of every created job, from the ledger alone (no remote call)."""
    report = StatusReport()
    async for record in ledger.reads.records([FileState.CREATED.value]):
        status = record.job_status or "UNKNOWN"
        report.by_status[status] += 1
        if status == "FAILED":
            report.failed_jobs.append((record.path, record.job_id, record.job_error or "no message"))
        elif status == NOT_FOUND:
            report.missing_jobs.append((record.path, record.job_id))
    return report


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


async def _refresh_by_list(
    ledger: Ledger,
    client: SlngClient,
    policy: RetryPolicy,
    open_records: list[FileRecord],
    by_job: dict[str, FileRecord],
) -> None:
    """Page the job list, filtered by status and by a submission window around our jobs; take every
    open job of ours it shows out of `by_job`. Terminal statuses first: they are what changes the
    next step; then the open ones, for progress counts. What neither pass shows stays in `by_job`."""
    stamps = [r.created_at or time.time() for r in open_records]
    window = {
        "submitted_after": _iso(min(stamps) - CLOCK_MARGIN_SECONDS),
        "submitted_before": _iso(max(stamps) + CLOCK_MARGIN_SECONDS),
    }
    for statuses in (LIST_TERMINAL, LIST_OPEN):
        pages = job_pages(client, policy, status=",".join(statuses), **window)
        async with contextlib.aclosing(pages):
            async for items in pages:
                if not by_job:
                    break
                updates: list[tuple[FileRecord, str, str | None]] = []
                for job in items:
                    record = by_job.get(job.job_id)
                    if record is None:
                        continue
                    if job.status == "FAILED" and job.error_message is None:
                        continue  # list items may be partial: a GET will bring the message
                    del by_job[job.job_id]
                    if status_changed(record, job.status, job_message(job)):
                        updates.append((record, job.status, job_message(job)))
                await ledger.set_job_statuses(updates)


async def refresh_statuses(ledger: Ledger, client: SlngClient, policy: RetryPolicy) -> StatusReport:
    """Bring every created, non-terminal job's status up to date from the server.

    Few open jobs: one GET each. Many: page the job list (status and date filters), then GET only
    what the list did not show. Every request goes through the client's read-rate limit.
    """
    created = ledger.reads.records([FileState.CREATED.value])
    open_records = [r async for r in created if r.job_status not in TERMINAL_STATUSES]
    by_job = {r.job_id: r for r in open_records}
    listed = len(by_job) > LIST_THRESHOLD
    if listed:
        await _refresh_by_list(ledger, client, policy, open_records, by_job)
    errors: list[tuple[str, str]] = []

    async def one(record: FileRecord) -> None:
        try:
            job = await retry_transient(policy, functools.partial(client.get_job, record.job_id))
        except AuthenticationError:
            raise
        except TransferError as exc:
            errors.append((record.path, str(exc)))
            log.warning("status of job %s (%s) unknown: %s", record.job_id, record.path, exc)
            return
        if job is None:
            log.warning("job %s of %s is not visible on the server (404)", record.job_id, record.path)
            status, message = NOT_FOUND, None
        else:
            status, message = job.status, job_message(job)
        if status_changed(record, status, message):
            await ledger.set_job_statuses([(record, status, message)])

    await for_each(list(by_job.values()), one, GET_CONCURRENCY)
    report = await status_summary(ledger)
    report.refreshed, report.listed, report.errors = len(open_records), listed, errors
    return report
