"""Follow-through after submission: job status, transcript download, reconcile.

Each command records its progress in the ledger as it goes, so it can be interrupted and rerun:
statuses are refreshed in place, a transcript on disk is never fetched twice, and reconcile only
ever marks jobs that the server proves exist.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import anyio

from pipeline.client import SlngClient, check_transport, connection_error
from pipeline.errors import ErrorClass, TransferError
from pipeline.ledger import FileRecord, FileState, Ledger
from pipeline.logs import log
from pipeline.models import TERMINAL_STATUSES, BatchJob, JobFiles
from pipeline.redact import safe_url
from pipeline.retry import RetryPolicy, retry_transient

OUTPUT_FORMATS = ("json", "txt", "srt")
LIST_THRESHOLD = 25  # more open jobs than this: page the job list instead of one GET per job
MAX_TRANSCRIPT_BYTES = 512 * 1024 * 1024


@dataclass
class StatusReport:
    by_status: Counter[str] = field(default_factory=Counter)
    refreshed: int = 0
    failed_jobs: list[tuple[str, str, str]] = field(default_factory=list)  # (path, job_id, message)

    @property
    def open_jobs(self) -> int:
        return sum(n for status, n in self.by_status.items() if status not in TERMINAL_STATUSES)


@dataclass
class FetchReport:
    written: int = 0
    skipped: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)  # (path, format) the server lacks
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    deleted: int = 0


def _is_terminal(status: str | None) -> bool:
    return status in TERMINAL_STATUSES


async def _record_status(ledger: Ledger, record: FileRecord, job: BatchJob) -> None:
    message = job.error_message.message if job.error_message else None
    if record.job_status == job.status and record.job_error == message:
        return
    await ledger.set_job_status(record, job.status, message)


async def refresh_statuses(ledger: Ledger, client: SlngClient, policy: RetryPolicy) -> StatusReport:
    """Bring every created, non-terminal job's status up to date from the server."""
    open_records = [r for r in ledger.records([FileState.CREATED.value]) if not _is_terminal(r.job_status)]
    by_job = {r.job_id: r for r in open_records}
    if len(by_job) > LIST_THRESHOLD:
        oldest = min((r.created_at or time.time()) for r in open_records)
        after = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(oldest - 3600))  # clock skew margin
        page, pages = 1, 1
        while page <= pages and by_job:
            listing = await retry_transient(
                policy,
                lambda p=page: client.list_jobs(p, 100, submitted_after=after, sort_order="asc"),  # type: ignore[misc]
            )
            pages = listing.meta.pages
            for job in listing.items:
                record = by_job.pop(job.job_id, None)
                if record is not None:
                    await _record_status(ledger, record, job)
            if not listing.items:
                break
            page += 1
    # Whatever the list did not show (or all of them, when few): one GET each, rate-limited.
    async with anyio.create_task_group() as tg:
        limiter = anyio.CapacityLimiter(16)
        for record in list(by_job.values()):

            async def one(record: FileRecord = record) -> None:
                async with limiter:
                    job = await retry_transient(policy, lambda: client.get_job(record.job_id))
                if job is None:
                    log.warning("job %s of %s is not visible on the server (404)", record.job_id, record.path)
                    return
                await _record_status(ledger, record, job)

            tg.start_soon(one)
    report = StatusReport(refreshed=len(open_records))
    for record in ledger.records([FileState.CREATED.value]):
        report.by_status[record.job_status or "UNKNOWN"] += 1
        if record.job_status == "FAILED":
            report.failed_jobs.append((record.path, record.job_id, record.job_error or "no message"))
    return report


def transcript_path(out_dir: Path, record: FileRecord, fmt: str) -> Path:
    """Where a transcript goes: OUT/<path relative to the source root>.<format>, never outside OUT."""
    if fmt not in OUTPUT_FORMATS:
        raise TransferError(f"refusing unknown transcript format {fmt!r}", ErrorClass.PERMANENT)
    root = out_dir.resolve()
    relative = Path(record.relative_path.lstrip("/"))
    target = (root / relative).resolve().with_name(f"{relative.name}.{fmt}")
    if root != target and root not in target.parents:
        raise TransferError(
            f"refusing to write outside {out_dir}: {record.relative_path}", ErrorClass.PERMANENT
        )
    return target


async def download(session: aiohttp.ClientSession, url: str, target: Path, allow_insecure_http: bool) -> int:
    """GET a presigned URL (no SLNG Authorization header) into `target`, atomically."""
    check_transport(url, "download URL", allow_insecure_http)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    size = 0
    try:
        async with session.get(
            url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=600)
        ) as response:
            if response.status != 200:
                expired = response.status == 403
                raise TransferError(
                    f"download of {safe_url(url)}: HTTP {response.status}",
                    ErrorClass.EXPIRED
                    if expired
                    else ErrorClass.TRANSIENT
                    if response.status >= 500
                    else ErrorClass.PERMANENT,
                    status=response.status,
                )
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as stream:
                async for chunk in response.content.iter_chunked(256 * 1024):
                    size += len(chunk)
                    if size > MAX_TRANSCRIPT_BYTES:
                        raise TransferError("transcript larger than 512 MB", ErrorClass.PERMANENT)
                    stream.write(chunk)
        os.replace(tmp, target)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise connection_error(f"download of {safe_url(url)}", exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return size


async def fetch_transcripts(
    ledger: Ledger,
    client: SlngClient,
    session: aiohttp.ClientSession,
    out_dir: Path,
    formats: Sequence[str],
    policy: RetryPolicy,
    delete_after: bool = False,
    concurrency: int = 8,
) -> FetchReport:
    """Download the wanted formats of every DONE job not yet on disk."""
    report = FetchReport()
    wanted = [f for f in formats if f in OUTPUT_FORMATS]
    todo = [r for r in ledger.records([FileState.CREATED.value]) if r.job_status == "DONE"]
    limiter = anyio.CapacityLimiter(concurrency)

    async def fetch_one(record: FileRecord) -> None:
        have = set(filter(None, (record.fetched_formats or "").split(",")))
        targets = {fmt: transcript_path(out_dir, record, fmt) for fmt in wanted}
        missing_here = [f for f in wanted if f not in have or not targets[f].exists()]
        if not missing_here:
            report.skipped += 1
            return
        files: JobFiles | None = None
        for fmt in missing_here:
            for fresh in range(3):  # an expired download URL: ask /files again for a new one
                if files is None or fresh:
                    files = await retry_transient(policy, lambda: client.job_files(record.job_id))
                output = files.output(fmt)
                if output is None:
                    report.missing.append((record.path, fmt))
                    break
                try:
                    await retry_transient(
                        policy,
                        lambda u=output.download_url, t=targets[fmt]: download(  # type: ignore[misc]
                            session, u, t, client.allow_insecure_http
                        ),
                    )
                except TransferError as exc:
                    if exc.error_class is ErrorClass.EXPIRED and fresh < 2:
                        continue
                    raise
                have.add(fmt)
                report.written += 1
                break
        await ledger.set_fetched(record, ",".join(sorted(have)))
        if delete_after and all(f in have for f in wanted):
            await retry_transient(policy, lambda: client.delete_job(record.job_id))
            await ledger.set_job_status(record, "DELETED", record.job_error)
            report.deleted += 1

    async with anyio.create_task_group() as tg:
        for record in todo:

            async def guarded(record: FileRecord = record) -> None:
                async with limiter:
                    try:
                        await fetch_one(record)
                    except TransferError as exc:
                        if exc.error_class is ErrorClass.AUTH:
                            raise
                        report.errors.append((record.path, str(exc)))
                        log.error("fetch failed: %s: %s", record.path, exc)

            tg.start_soon(guarded)
    return report


async def wait_for_jobs(
    ledger: Ledger, client: SlngClient, policy: RetryPolicy, wait_seconds: float, first_interval: float = 2.0
) -> StatusReport:
    """Poll with backoff (2 s, x1.5, capped at 30 s) until no job is open or `wait_seconds` pass."""
    interval = first_interval
    deadline = time.monotonic() + wait_seconds
    while True:
        report = await refresh_statuses(ledger, client, policy)
        if report.open_jobs == 0 or time.monotonic() >= deadline:
            return report
        log.info("waiting for %d open jobs (%s)", report.open_jobs, dict(report.by_status))
        await anyio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 30.0)


@dataclass
class ReconcileReport:
    matched: int = 0  # ledger files whose job the server has, newly marked created
    already: int = 0
    unknown_on_server: list[str] = field(default_factory=list)  # jobs the ledger does not know


async def reconcile(ledger: Ledger, client: SlngClient, policy: RetryPolicy) -> ReconcileReport:
    """Match every job on the server to the ledger by job_id; mark proven ones created."""
    report = ReconcileReport()
    by_job = {r.job_id: r for r in ledger.records()}
    page, pages = 1, 1
    while page <= pages:
        listing = await retry_transient(policy, lambda p=page: client.list_jobs(p, 100, sort_order="asc"))  # type: ignore[misc]
        pages = listing.meta.pages
        for job in listing.items:
            record = by_job.get(job.job_id)
            if record is None:
                report.unknown_on_server.append(job.job_id)
                continue
            if record.state is FileState.CREATED:
                report.already += 1
            else:
                await ledger.transition(record, FileState.CREATED, error=None, error_class=None)
                report.matched += 1
            await _record_status(ledger, record, job)
        if not listing.items:
            break
        page += 1
    return report
