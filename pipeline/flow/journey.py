"""One file's journey, the per-file state machine, read top to bottom in `Journey.process`.

Admit it to the ledger (its job_id fixed before any remote call; whether and how it is worked on
is `flow.admission`'s verdict), presign just in time, stream the PUT, create the job, and record
each step durably before the next one depends on it. Each request is retried by one mechanism
(`with_retries`). The worker pool that runs many journeys at once is `flow.pool`.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
from aiolimiter import AsyncLimiter

from pipeline.api.client import SlngClient
from pipeline.api.models import CreateFromUploadRequest, PresignRequest, UploadTarget
from pipeline.config.settings import Settings
from pipeline.errors import (
    AuthenticationError,
    ErrorClass,
    FileChangedError,
    StalledUploadError,
    TransferError,
    UrlRefusedError,
)
from pipeline.flow.admission import FAILED_BEFORE, AdmissionRules, Verdict
from pipeline.flow.signals import SignalWatch
from pipeline.flow.standing import StandingFailures, failure_fields
from pipeline.ledger import Admission, FileRecord, FileState, Glance, HistoryKind, Ledger
from pipeline.logs import log
from pipeline.observe.stats import Failure, RunStats
from pipeline.sources.identity import derive_job_id
from pipeline.sources.rows import FileSpec, Rejection
from pipeline.storage.upload import SmallFileRead, UploadOptions, UploadResult, put_file, read_whole
from pipeline.transport.rates import RateControl
from pipeline.transport.retry import RetryPolicy, retry_transient

URL_SAFETY_MARGIN = 30.0  # seconds: do not start a PUT on a URL about to expire


@dataclass(frozen=True, slots=True)
class WorkItem:
    spec: FileSpec
    key: str
    job_id: str


@dataclass(slots=True)
class InFlight:
    """A file being worked on: its row and its latest ledger record. Each ledger step returns a
    new record; the journey keeps the latest here, so every step sees what the last one wrote."""

    spec: FileSpec
    record: FileRecord
    read: SmallFileRead | None = None  # a small file's read, started with its presign, for one PUT


@dataclass(slots=True)
class _LiveUrl:
    """An upload URL held in memory only (it is a credential), with its deadline."""

    target: UploadTarget
    expires_at: float

    @property
    def seconds_left(self) -> float:
        return self.expires_at - time.monotonic()


class Journey:
    """The steps of one file, and the run-wide state they share (ledger, HTTP session, counters,
    slots, the stop flag); `flow.pool.Pipeline` adds the pool that feeds them."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        client: SlngClient,
        session: aiohttp.ClientSession,
        rates: RateControl,
        signals: SignalWatch | None = None,
    ) -> None:
        self.settings = settings
        self.signals = signals or SignalWatch()  # the command's; inert for a library caller's run
        self.rates = rates
        self.ledger = ledger
        self.client = client
        self.session = session
        self.stats = RunStats(run_id=uuid.uuid4().hex[:12])
        self.policy = RetryPolicy(retries=settings.retries, max_elapsed=settings.retry_max_elapsed)
        self.upload_options = UploadOptions(
            chunk_size=settings.chunk_size,
            stall_timeout=settings.stall_timeout,
            bandwidth=AsyncLimiter(settings.max_bandwidth, 1.0) if settings.max_bandwidth else None,
        )
        self.stopping = anyio.Event()  # no new files are taken once set
        self.signalled = False  # a SIGINT/SIGTERM came: the run ends as stopped (exit 6), whatever else
        self._producer_scope = anyio.CancelScope()
        self.slots = anyio.CapacityLimiter(settings.concurrency)  # files actively worked on
        self._deadlines: dict[int, float] = {}  # per file in flight: when its retry budget ends
        self.permanent_failures = 0
        self.rules = AdmissionRules(force=settings.force, settle_ns=int(settings.settle * 1e9))
        self.standing = StandingFailures(self.stats)

    # --- one file's journey ---------------------------------------------------------------------

    async def process(self, item: WorkItem) -> None:
        """One file, top to bottom: admit (job_id recorded) → presign → PUT → create → created.

        Each branch resumes from what the ledger says: a create whose outcome was unknown is asked
        about first; a presigned file is presigned again (URLs are never stored); a failed one
        starts over with the same job_id, or a new one under --force.
        """
        admission: Admission = await self.ledger.admit(item.spec, item.key, item.job_id, self.stats.run_id)
        if admission.record is None:
            await self.reject(
                Rejection(
                    item.spec.source, item.spec.line, item.spec.path_text, admission.refusal or "refused"
                )
            )
            return
        record = admission.record
        # The same file may come twice, or another process may have failed it since the glance.
        verdict = self.rules.verdict(record.state, record.error_class, job_status=record.job_status)
        if verdict is Verdict.SKIP_DONE:
            self.stats.skipped_done += 1
            return
        if verdict in FAILED_BEFORE:
            error = record.job_error if verdict is Verdict.SKIP_JOB_FAILED else record.error
            known = Glance(record.state, record.error_class, record.job_id, error, record.job_status)
            self.standing.report(item.spec, verdict, known)
            return
        if verdict is Verdict.RENEW:
            new_job_id = derive_job_id(record.file_key, record.generation + 1)
            record = await self.ledger.renew(record, new_job_id, HistoryKind.FORCED, "resubmitted (--force)")
        elif verdict is Verdict.RESTART:  # ran out of retries last time: same job_id, fresh start
            record = await self.ledger.mark_pending(record)
        file = InFlight(item.spec, record)
        self.stats.queued += 1
        self.stats.bytes_total += item.spec.size
        self.stats.in_flight += 1
        self._deadlines[record.id] = time.monotonic() + self.policy.max_elapsed  # --retry-max-elapsed
        try:
            if file.record.state is FileState.CREATING and await self.confirm_created(file):
                return  # an earlier run's create did land: nothing to redo
            if file.record.state in (FileState.PENDING, FileState.PRESIGNED):
                if read_whole(item.spec.size, self.upload_options):  # read while the presign is out
                    file.read = SmallFileRead(item.spec.path, item.spec.size, item.spec.mtime_ns)
                url = await self.presign(file)
                if url is None:
                    return  # the job already exists (409 on presign, confirmed)
                await self.upload(file, url)
            await self.create(file)
        except AuthenticationError:
            # Refused for every file: no worker takes another one, even in the loop turns before
            # the pool's cancellation reaches it (the slot this file frees wakes one at once).
            self.stopping.set()
            raise
        except FileChangedError as exc:
            self.stats.changed += 1
            file.record = await self.ledger.mark_changed(file.record, str(exc))
            log.warning("%s", exc)
        except TransferError as exc:
            await self.fail(file, exc.error_class, str(exc))
        finally:
            self.stats.in_flight -= 1
            del self._deadlines[record.id]

    async def presign(self, file: InFlight) -> _LiveUrl | None:
        """Step 1, just in time (a worker is free now). None when the job turns out to exist.

        Each call is one attempt of the file in the ledger: a new pass at it, or a fresh URL. It is
        counted with the presign's outcome, in the same write as the URL's record when it succeeds.
        """
        spec = file.spec
        request = PresignRequest(
            filename=spec.path.name,
            content_type=None,
            job_id=file.record.job_id,
            transcription_config=spec.settings.wire_transcription_config(),
            tracking=spec.settings.tracking,
            output_config=spec.settings.output_config,
        )
        try:
            response = await self.with_retries(file, lambda: self.client.presign(request))
        except Exception as exc:
            file.record = await self.ledger.count_attempt(file.record)  # a failed presign is one too
            conflict = isinstance(exc, TransferError) and exc.error_class is ErrorClass.CONFLICT
            if conflict and await self.confirm_created(file):
                return None
            raise
        self.stats.presigns += 1
        echo = {
            k: v
            for k, v in (
                ("transcription_config", response.transcription_config),
                ("tracking", response.tracking),
                ("output_config", response.output_config),
            )
            if v
        }
        # Written behind: lost, it only means presigning again. The attempt is counted in it.
        file.record = await self.ledger.mark_presigned(
            file.record, response.upload.s3_key, echo, attempts=file.record.attempts + 1
        )
        return _LiveUrl(response.upload, time.monotonic() + response.upload.expires_in)

    async def upload(self, file: InFlight, url: _LiveUrl) -> None:
        """Step 2: stream the PUT. An expired URL means presign again, then PUT again (bounded by
        --retries fresh URLs); a 403 that is not about expiry gets one fresh URL, and is permanent
        if that one is refused too."""
        refusals = 0
        for fresh_urls in range(self.settings.retries + 1):
            try:
                result: UploadResult = await self.with_retries(file, functools.partial(self.put, file, url))
            except TransferError as exc:
                if exc.error_class is not ErrorClass.EXPIRED:
                    raise
                if isinstance(exc, UrlRefusedError) and not exc.expired:
                    refusals += 1
                    if refusals > 1:
                        raise TransferError(
                            f"{exc}; a fresh URL did not cure it", ErrorClass.PERMANENT, status=exc.status
                        ) from None
                if fresh_urls == self.settings.retries:
                    raise TransferError(
                        f"{exc}; {fresh_urls} fresh URLs did not help",
                        ErrorClass.TRANSIENT,
                        status=exc.status,
                    ) from None
                fresh = await self.represign(file, str(exc))
                if fresh is None:
                    return  # the job exists after all (confirmed and recorded as created)
                url = fresh
                continue
            self.stats.bytes_sent += result.bytes_sent
            # Written behind: the durable CREATING record that follows carries it to disk first.
            file.record = await self.ledger.mark_uploaded(file.record, result.md5)
            return
        raise AssertionError("unreachable: the loop returns or raises")

    async def put(self, file: InFlight, url: _LiveUrl) -> UploadResult:
        """One PUT attempt, the file read from byte 0. A URL too close to its end is not even tried."""
        spec, prefetched, file.read = file.spec, file.read, None  # a retry reads the file again
        if url.seconds_left < min(URL_SAFETY_MARGIN, url.target.expires_in / 4):
            raise UrlRefusedError("upload URL expired (or about to) before the PUT started", expired=True)
        sent = 0

        def progress(nbytes: int) -> None:
            nonlocal sent
            sent += nbytes
            self.stats.bytes_in_flight += nbytes

        try:
            return await put_file(
                self.session,
                url.target,
                spec.path,
                expected_size=spec.size,
                expected_mtime_ns=spec.mtime_ns,
                content_type=None,
                options=self.upload_options,
                progress=progress,
                url_deadline=url.expires_at,
                prefetched=prefetched,
            )
        finally:
            self.stats.bytes_in_flight -= sent

    async def represign(self, file: InFlight, why: str) -> _LiveUrl | None:
        """A fresh upload URL (same job_id and key); None when the job turns out to exist."""
        log.info("fresh upload URL for %s: %s", file.spec.path, why)
        self.stats.represigns += 1
        return await self.presign(file)

    async def create(self, file: InFlight) -> None:
        """Step 3, exactly once: the intent is durable before the call; an unknown outcome is asked about.

        The job_id is fixed, so a repeated create can only be refused (409), never a second job;
        asking first (GET) after an unknown outcome still saves the resend and the 409. Retried
        like presign and PUT (`with_retries`): the asking is part of the attempt.
        """
        record, spec = file.record, file.spec
        if record.state is FileState.CREATED:
            return  # found to exist while uploading (409 on a fresh presign, confirmed)
        assert record.s3_key is not None, "create needs an uploaded object"
        body = CreateFromUploadRequest(
            s3_key=record.s3_key,
            job_id=record.job_id,
            model_code=spec.settings.model_code,
            transcription_config=spec.settings.wire_transcription_config(),
            metadata=spec.settings.metadata,
            tracking=spec.settings.tracking,
            output_config=spec.settings.output_config,
        )

        async def send_once() -> None:
            # Durable before the call: a crash after sending is resolved by asking, never by resending.
            file.record = await self.ledger.mark_creating(file.record, file.record.attempts)
            try:
                await self.client.create_from_upload(body, echo=record.echo)
            except TransferError as exc:
                if exc.error_class is ErrorClass.CONFLICT:
                    if await self.confirm_created(file):
                        return
                    raise TransferError(f"{exc} (and the job is not visible)", ErrorClass.PERMANENT) from None
                # Timeout, 5xx, lost connection: the job may exist. Ask before it is sent again.
                # A 429 was refused before any work was done: nothing to ask about.
                if exc.is_transient and exc.status != 429 and await self.confirm_created(file):
                    return
                raise
            file.record = await self.ledger.mark_created(file.record)
            self.stats.created += 1

        await self.with_retries(file, send_once)

    async def confirm_created(self, file: InFlight) -> bool:
        """Ask the server whether the job exists; if it does, record it as created."""
        job_id = file.record.job_id
        job = await self.with_retries(file, lambda: self.client.get_job(job_id))
        if job is None:
            return False
        file.record = await self.ledger.mark_created(file.record)
        self.stats.already_created += 1
        return True

    # --- failure bookkeeping -------------------------------------------------------------------

    async def with_retries(self, file: InFlight, operation: Any) -> Any:
        """Run one request of the file's, retrying transient errors; each retry is an attempt."""
        if not self.stats.rates:
            self.stats.rates = self.rates.live  # updated in place: the progress display shows them

        async def on_retry(exc: TransferError) -> None:
            self.count_retry(exc)
            file.read = None  # it backs off without its slot: it holds no buffer meanwhile either
            file.record = await self.ledger.count_attempt(file.record)

        return await retry_transient(
            self.policy,
            operation,
            on_retry,
            deadline=self._deadlines.get(file.record.id),
            sleep=self.sleep_without_slot,
        )

    async def sleep_without_slot(self, seconds: float) -> None:
        """Back off without holding a slot: another file works while this one waits out a
        Retry-After, so throttling slows the pool by its rate, not by idle workers."""
        self.slots.release()
        try:
            await anyio.sleep(seconds)
        finally:
            with anyio.CancelScope(shield=True):
                await self.slots.acquire()

    def count_retry(self, exc: TransferError) -> None:
        self.stats.retries += 1
        if isinstance(exc, StalledUploadError):
            kind = "stalled upload"
        else:
            kind = f"HTTP {exc.status}" if exc.status else "connection"
        self.stats.retry_classes[kind] += 1

    async def fail(self, file: InFlight, error_class: ErrorClass, message: str) -> None:
        record = file.record = await self.ledger.mark_failed(file.record, message, error_class)
        failure = Failure(record.path, record.job_id, error_class.value, message, record.source, record.line)
        self.stats.add_failure(failure)
        log.error(
            "failed (%s): %s: %s: %s",
            error_class.value,
            failure.where,
            record.path,
            message,
            extra={"fields": failure_fields(failure)},
        )
        if error_class is not ErrorClass.PERMANENT:
            return  # out of retries on transient errors: tried again next run, not a --max-failures one
        self.permanent_failures += 1
        limit = self.settings.max_failures
        if limit is not None and self.permanent_failures >= limit and not self.stopping.is_set():
            self.stop(f"--max-failures {limit} reached")

    async def reject(self, rejection: Rejection) -> None:
        self.stats.rejected += 1
        await self.ledger.reject(self.stats.run_id, rejection)
        log.warning("rejected: %s", rejection.message())

    def stop(self, why: str) -> None:
        if not self.stopping.is_set():
            log.warning("stopping: %s; no new files will be started", why)
            self.stats.interrupted = why
            self.stopping.set()
            self._producer_scope.cancel()  # unblocks a producer waiting on a slow source (stdin)
