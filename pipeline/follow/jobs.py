"""Follow-through after submission: job status, transcript download, reconcile.

Each command records its progress in the ledger as it goes, so it can be interrupted and rerun:
statuses are refreshed in place, a transcript on disk is never fetched twice, and reconcile only
ever marks jobs that the server proves exist.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
import anyio

from pipeline.api.client import SlngClient, check_transport, connection_error
from pipeline.api.models import TERMINAL_STATUSES, BatchJob, JobFiles
from pipeline.errors import AuthenticationError, ConfigError, ErrorClass, LedgerWriteError, TransferError
from pipeline.flow.retry import RetryPolicy, retry_transient
from pipeline.ledger import FileRecord, FileState, Ledger
from pipeline.observe.logs import log
from pipeline.observe.redact import safe_url
from pipeline.sources.identity import derive_job_id

T = TypeVar("T")

OUTPUT_FORMATS = ("json", "txt", "srt")
LIST_THRESHOLD = 25  # more open jobs than this: page the job list instead of one GET per job
LIST_PAGE_SIZE = 100
LIST_TERMINAL = ("DONE", "FAILED", "DELETED")
LIST_OPEN = ("QUEUED", "IN_PROGRESS", "DECODING")  # POST_PROCESSING cannot be listed: GET finds it
CLOCK_MARGIN_SECONDS = 3600  # the date filter's slack for clock skew between us and the server
GET_CONCURRENCY = 16
NOT_FOUND = "NOT_FOUND"  # ledger only: the server answered 404 for a job it once acknowledged
MAX_TRANSCRIPT_BYTES = 512 * 1024 * 1024
FRESH_URL_ATTEMPTS = 3  # an expired download URL: ask /files again, at most this many times per output
RETRY_REASON = "job FAILED on the server"
LATER_GENERATIONS = 4  # reconcile also recognises this many resubmissions (retry-failed, --force)


# --- small helpers ------------------------------------------------------------------------------------


def check_formats(formats: Iterable[str]) -> list[str]:
    """The wanted transcript formats, deduplicated; an unknown one is a usage error."""
    wanted: list[str] = []
    for fmt in formats:
        fmt = fmt.strip().lower()
        if fmt not in OUTPUT_FORMATS:
            raise ConfigError(f"unknown transcript format {fmt!r}: choose from {', '.join(OUTPUT_FORMATS)}")
        if fmt not in wanted:
            wanted.append(fmt)
    if not wanted:
        raise ConfigError(f"no transcript format given: choose from {', '.join(OUTPUT_FORMATS)}")
    return wanted


async def _for_each(items: Iterable[T], fn: Callable[[T], Awaitable[None]], concurrency: int) -> None:
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


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _message(job: BatchJob) -> str | None:
    return job.error_message.message if job.error_message else None


# --- status -------------------------------------------------------------------------------------------


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
        done = (*TERMINAL_STATUSES, NOT_FOUND)
        return sum(n for status, n in self.by_status.items() if status not in done)


def status_summary(ledger: Ledger) -> StatusReport:
    """Counts by server status of every created job, from the ledger alone (no remote call)."""
    report = StatusReport()
    for record in ledger.records([FileState.CREATED.value]):
        status = record.job_status or "UNKNOWN"
        report.by_status[status] += 1
        if status == "FAILED":
            report.failed_jobs.append((record.path, record.job_id, record.job_error or "no message"))
        elif status == NOT_FOUND:
            report.missing_jobs.append((record.path, record.job_id))
    return report


def _changed(record: FileRecord, status: str, message: str | None) -> bool:
    return record.job_status != status or record.job_error != message


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
                    if _changed(record, job.status, _message(job)):
                        updates.append((record, job.status, _message(job)))
                await ledger.set_job_statuses(updates)


async def job_pages(
    client: SlngClient, policy: RetryPolicy, **filters: str
) -> AsyncGenerator[list[BatchJob], None]:
    """The job list, page by page, oldest first: jobs submitted meanwhile land on later pages
    instead of shifting earlier ones."""
    page, pages = 1, 1
    while page <= pages:
        listing = await retry_transient(
            policy,
            functools.partial(
                client.list_jobs, page, LIST_PAGE_SIZE, sort_by="submitted_at", sort_order="asc", **filters
            ),
        )
        if not listing.items:
            return
        yield listing.items
        pages = listing.meta.pages
        page += 1


async def refresh_statuses(ledger: Ledger, client: SlngClient, policy: RetryPolicy) -> StatusReport:
    """Bring every created, non-terminal job's status up to date from the server.

    Few open jobs: one GET each. Many: page the job list (status and date filters), then GET only
    what the list did not show. Every request goes through the client's read-rate limit.
    """
    created = ledger.records([FileState.CREATED.value])
    open_records = [r for r in created if r.job_status not in TERMINAL_STATUSES]
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
            status, message = job.status, _message(job)
        if _changed(record, status, message):
            await ledger.set_job_statuses([(record, status, message)])

    await _for_each(list(by_job.values()), one, GET_CONCURRENCY)
    report = status_summary(ledger)
    report.refreshed, report.listed, report.errors = len(open_records), listed, errors
    return report


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
            report = status_summary(ledger)
        else:
            if report.open_jobs == 0:
                return report
        left = deadline - time.monotonic()
        if left <= 0:
            return report
        log.info("waiting for %d open jobs (%s)", report.open_jobs, dict(report.by_status))
        await anyio.sleep(min(interval, left))
        interval = min(interval * 1.5, max_interval)


# --- fetch --------------------------------------------------------------------------------------------


@dataclass
class FetchReport:
    written: int = 0  # transcript files written
    skipped: int = 0  # jobs whose wanted outputs were all on disk already
    missing: list[tuple[str, str]] = field(default_factory=list)  # (path, format) the server lacks
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    fresh_urls: int = 0  # /files asked again because a download URL had expired
    deleted: int = 0


def transcript_path(out_dir: Path, relative_path: str, fmt: str, variant: str | None = None) -> Path:
    """Where a transcript goes: OUT/<path relative to the source root>.<format>, never outside OUT.

    `relative_path` comes from the ledger (a leading '/' is dropped); '..' anywhere, an empty path,
    an unknown format, or a folder inside OUT that is a symbolic link leading out of it is refused.
    `variant` (a job_id) is inserted before the format when two files share a relative path.
    """
    if fmt not in OUTPUT_FORMATS:
        raise TransferError(f"refusing unknown transcript format {fmt!r}", ErrorClass.PERMANENT)
    if variant is not None and not variant.isalnum():
        raise TransferError(f"refusing transcript name variant {variant!r}", ErrorClass.PERMANENT)
    parts = [p for p in relative_path.split("/") if p not in ("", ".")]  # ledger paths use '/'
    if not parts or ".." in parts or "\0" in relative_path:
        raise TransferError(f"refusing to write outside {out_dir}: {relative_path!r}", ErrorClass.PERMANENT)
    root = out_dir.resolve()
    name = f"{parts[-1]}.{variant}.{fmt}" if variant else f"{parts[-1]}.{fmt}"
    parent = root.joinpath(*parts[:-1]).resolve()  # follows links that already exist inside OUT
    if parent != root and root not in parent.parents:
        raise TransferError(
            f"refusing to write outside {out_dir}: {relative_path!r} leads to {parent}", ErrorClass.PERMANENT
        )
    return parent / name


def _download_error(url: str, status: int) -> TransferError:
    if status == 403:  # S3's answer to an expired (or otherwise refused) presigned GET
        error_class = ErrorClass.EXPIRED
    elif status in (408, 429) or status >= 500:
        error_class = ErrorClass.TRANSIENT
    else:
        error_class = ErrorClass.PERMANENT
    return TransferError(f"download of {safe_url(url)}: HTTP {status}", error_class, status=status)


async def download(session: aiohttp.ClientSession, url: str, target: Path, allow_insecure_http: bool) -> int:
    """GET a presigned URL (no SLNG Authorization header) into `target`, atomically.

    The body goes to a fresh temporary file beside the target (created exclusively, owner-only),
    is flushed to disk, then renamed over the target: a reader never sees half a transcript, and an
    interrupted download leaves nothing behind but, at worst, a temporary file the next try removes.
    """
    try:
        check_transport(url, "download URL", allow_insecure_http)
    except ConfigError as exc:
        raise TransferError(str(exc), ErrorClass.PERMANENT) from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
            stale.unlink(missing_ok=True)  # left by a killed earlier run
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise TransferError(f"cannot write {target}: {exc.strerror or exc}", ErrorClass.PERMANENT) from None
    tmp = Path(tmp_name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as stream:
            try:
                async with session.get(
                    url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=600, sock_read=60)
                ) as response:
                    if response.status != 200:
                        raise _download_error(url, response.status)
                    async for chunk in response.content.iter_chunked(256 * 1024):
                        size += len(chunk)
                        if size > MAX_TRANSCRIPT_BYTES:
                            raise TransferError("transcript larger than 512 MB", ErrorClass.PERMANENT)
                        stream.write(chunk)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise connection_error(f"download of {safe_url(url)}", exc) from None
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except OSError as exc:  # the local disk: full, read-only, a name too long
        raise TransferError(f"cannot write {target}: {exc.strerror or exc}", ErrorClass.PERMANENT) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # still there only when something went wrong
    return size


async def _delete_job(ledger: Ledger, client: SlngClient, policy: RetryPolicy, record: FileRecord) -> None:
    """DELETE the job; a 409/404 (e.g. our earlier DELETE landed but its answer was lost) is checked."""
    try:
        await retry_transient(policy, functools.partial(client.delete_job, record.job_id))
    except TransferError as exc:
        if exc.error_class not in (ErrorClass.CONFLICT, ErrorClass.NOT_FOUND):
            raise
        job = await retry_transient(policy, functools.partial(client.get_job, record.job_id))
        if job is not None and job.status != "DELETED":
            raise
    await ledger.set_server_deleted(record)


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
    """Download the wanted formats of every DONE job not yet on disk.

    Names never come from the server: a transcript goes to OUT/<relative path>.<format>, with the
    format chosen by us. Progress is recorded per output, so a rerun fetches only what is missing.
    """
    wanted = check_formats(formats)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None
    report = FetchReport()
    created = list(ledger.records([FileState.CREATED.value]))
    owner: dict[str, int] = {}  # relative path -> the oldest file that has it: it gets the plain name
    for record in created:
        owner.setdefault(record.relative_path, record.id)

    async def fetch_one(record: FileRecord) -> None:
        variant = None if owner[record.relative_path] == record.id else record.job_id
        targets = {fmt: transcript_path(out_dir, record.relative_path, fmt, variant) for fmt in wanted}
        have = set(filter(None, (record.fetched_formats or "").split(",")))
        needed = [f for f in wanted if f not in have or not targets[f].exists()]
        have -= set(needed)
        absent: list[str] = []
        files: JobFiles | None = None
        for fmt in needed:
            for attempt in range(FRESH_URL_ATTEMPTS):
                if files is None:
                    files = await retry_transient(policy, functools.partial(client.job_files, record.job_id))
                output = files.output(fmt)
                if output is None:
                    absent.append(fmt)
                    report.missing.append((record.path, fmt))
                    log.warning("job %s (%s) has no %s output", record.job_id, record.path, fmt)
                    break
                try:
                    await retry_transient(
                        policy,
                        functools.partial(
                            download, session, output.download_url, targets[fmt], client.allow_insecure_http
                        ),
                    )
                except TransferError as exc:
                    if exc.error_class is ErrorClass.EXPIRED and attempt + 1 < FRESH_URL_ATTEMPTS:
                        log.info("download URL of %s expired; asking /files again", record.job_id)
                        report.fresh_urls += 1
                        files = None
                        continue
                    raise
                have.add(fmt)
                await ledger.set_fetched(record, ",".join(sorted(have)))
                report.written += 1
                break
        if not needed:
            report.skipped += 1
        if delete_after and all(f in have or f in absent for f in wanted):
            await _delete_job(ledger, client, policy, record)
            report.deleted += 1

    async def guarded(record: FileRecord) -> None:
        try:
            await fetch_one(record)
        except AuthenticationError:
            raise
        except TransferError as exc:
            report.errors.append((record.path, str(exc)))
            log.error("fetch failed: %s: %s", record.path, exc)

    await _for_each([r for r in created if r.job_status == "DONE"], guarded, concurrency)
    return report


# --- reconcile ----------------------------------------------------------------------------------------


@dataclass
class SourceAdmission:
    """What `admit_sources` did with the rows of the given sources."""

    added: int = 0  # new to the ledger
    known: int = 0  # the ledger had them already
    refused: int = 0  # e.g. a manifest job_id that another file owns
    rejected: int = 0  # bad rows (missing file, bad value, ...)


@dataclass
class ReconcileReport:
    matched: int = 0  # ledger files whose job the server has, newly marked created
    already: int = 0  # ledger files already marked created, status refreshed
    adopted: int = 0  # files whose later job (retry-failed, --force) was found and adopted
    historical: int = 0  # server jobs the ledger knows as replaced (job history)
    unknown_on_server: list[str] = field(default_factory=list)  # jobs the ledger does not know
    missing_on_server: list[str] = field(default_factory=list)  # created in the ledger, not listed


async def reconcile(ledger: Ledger, client: SlngClient, policy: RetryPolicy) -> ReconcileReport:
    """Page every job on the server and match it to the ledger by job_id; mark proven ones created.

    A file's job_id is derived from its identity, so a ledger rebuilt from the same sources knows the
    ids to look for, including those of a few resubmissions. Only jobs the server lists are marked.
    """
    report = ReconcileReport()
    records = list(ledger.records())
    by_job = {r.job_id: r for r in records}
    later: dict[str, tuple[FileRecord, int]] = {}
    for record in records:
        for generation in range(record.generation + 1, record.generation + 1 + LATER_GENERATIONS):
            later[derive_job_id(record.file_key, generation)] = (record, generation)
    history = ledger.history_job_ids()
    adopt: dict[int, tuple[FileRecord, BatchJob, int]] = {}
    seen: set[str] = set()
    async for items in job_pages(client, policy):
        updates: list[tuple[FileRecord, str, str | None]] = []
        for job in items:
            if job.job_id in seen:
                continue  # pages shifted under us: seen on the page before
            seen.add(job.job_id)
            mine = by_job.get(job.job_id)
            if mine is None:
                hit = later.get(job.job_id)
                if hit is not None:
                    candidate, generation = hit
                    best = adopt.get(candidate.id)
                    if best is None or best[2] < generation:
                        adopt[candidate.id] = (candidate, job, generation)
                elif job.job_id in history:
                    report.historical += 1
                else:
                    report.unknown_on_server.append(job.job_id)
                continue
            if mine.state is FileState.CREATED:
                report.already += 1
            else:
                await ledger.mark_created(mine)
                report.matched += 1
            if _changed(mine, job.status, _message(job)):
                updates.append((mine, job.status, _message(job)))
        await ledger.set_job_statuses(updates)
    for record, job, generation in adopt.values():
        await ledger.adopt_job(
            record, job.job_id, generation, "reconcile: a later job of this file is on the server"
        )
        await ledger.set_job_statuses([(record, job.status, _message(job))])
        report.adopted += 1
    report.missing_on_server = [
        r.job_id
        for r in records
        if r.state is FileState.CREATED and r.job_id not in seen and r.id not in adopt
    ]
    return report
