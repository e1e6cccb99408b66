"""One file's journey, the per-file state machine, read top to bottom in `Journey.process`.

Admit it to the ledger (its job_id fixed before any remote call; whether and how it is worked on
is `flow.admission`'s verdict), presign just in time, stream the PUT, create the job, and record
each step durably before the next one depends on it. Each request is retried by one mechanism
(`with_retries`). What the run's files share is `flow.context.RunContext`; the worker pool that
runs many journeys at once is `flow.pool`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from pipeline.api.models import CreateFromUploadRequest, CreateFromUrlRequest, PresignRequest, UploadTarget
from pipeline.errors import (
    AuthenticationError,
    ErrorClass,
    FileChangedError,
    StalledUploadError,
    TransferError,
    UrlRefusedError,
)
from pipeline.flow.admission import Verdict
from pipeline.flow.context import FileResult, Outcome, RunContext
from pipeline.ledger import Admission, FileRecord, FileState, HistoryKind
from pipeline.logs import log
from pipeline.observe.stats import Failure
from pipeline.sources.identity import derive_job_id
from pipeline.sources.rows import FileSpec, Rejection
from pipeline.storage.upload import EarlyRead, ListedFile, PutRequest, UploadResult, put_file
from pipeline.transport.retry import retry_transient
from pipeline.transport.throttle import ThrottledTooLongError

T = TypeVar("T")

URL_SAFETY_MARGIN = 30.0  # seconds: do not start a PUT on a URL about to expire


@dataclass(frozen=True, slots=True)
class WorkItem:
    spec: FileSpec
    key: str
    job_id: str


@dataclass(slots=True)
class _LiveUrl:
    """An upload URL held in memory only (it is a credential), with its deadline."""

    target: UploadTarget
    expires_at: float

    @property
    def seconds_left(self) -> float:
        return self.expires_at - time.monotonic()


class Journey:
    """The steps of one file, from admission to its job: what it shares with the run's other
    files (ledger, client, counters, slots, the stop) is `self.run`."""

    def __init__(self, run: RunContext, item: WorkItem) -> None:
        self.run = run
        self.item = item
        self.spec = item.spec
        # The latest ledger record: each step returns a new one, so every step sees what the last wrote.
        self.record: FileRecord
        self.deadline = 0.0  # when its retry budget (--retry-max-elapsed) ends

    @functools.cached_property
    def file(self) -> ListedFile:
        """The file as listed, for its PUT (built on first use: a skipped row never needs its Path)."""
        return ListedFile(self.spec.path, self.spec.size, self.spec.mtime_ns)

    async def process(self) -> None:
        """One file, top to bottom: admit (job_id recorded) → presign → PUT → create → created;
        a file named by URL: admit → sign its GET URL → create from the URL → created.

        Each branch resumes from what the ledger says: a create whose outcome was unknown is asked
        about first; a presigned file is presigned again (URLs are never stored); a failed one
        starts over with the same job_id, or a new one under --force.
        """
        run, item, spec = self.run, self.item, self.spec
        admission: Admission = await run.ledger.admit(spec, item.key, item.job_id, run.stats.run_id)
        if admission.record is None:
            refusal = admission.refusal or "refused"
            await run.reject(Rejection(spec.source, spec.line, spec.path_text, refusal))
            return
        record = admission.record
        # The same file may come twice, or another process may have failed it since the glance.
        verdict = run.rules.verdict(record.state, record.error_class, job_status=record.job_status)
        if run.skips(verdict, spec, record.glance()):
            return
        if verdict is Verdict.RENEW:
            new_job_id = derive_job_id(record.id_seed, record.generation + 1)
            record = await run.ledger.renew(record, new_job_id, HistoryKind.FORCED, "resubmitted (--force)")
        elif verdict is Verdict.RESTART:  # ran out of retries last time: same job_id, fresh start
            record = await run.ledger.mark_pending(record)
        self.record = record
        run.stats.queued += 1
        run.stats.bytes_total += spec.size
        run.stats.in_flight += 1
        self.deadline = time.monotonic() + run.policy.max_elapsed  # --retry-max-elapsed
        try:
            if self.record.state is FileState.CREATING and await self.confirm_created():
                return  # an earlier run's create did land: nothing to redo
            if spec.is_remote:  # named by URL: the service fetches it, no byte passes through here
                await self.create_from_url()
                return
            if self.record.state in (FileState.PENDING, FileState.PRESIGNED):
                early = run.upload_options.early_read(self.file)  # a small file is read meanwhile
                url = await self.presign(early)
                if url is None:
                    return  # the job already exists (409 on presign, confirmed)
                await self.upload(url, early)
            await self.create()
        except AuthenticationError:
            # Refused for every file: no worker takes another one, even in the loop turns before
            # the pool's cancellation reaches it (the slot this file frees wakes one at once).
            run.stopping.set()
            raise
        except FileChangedError as exc:
            run.stats.changed += 1
            self.record = await run.ledger.mark_changed(self.record, str(exc))
            self.tell(Outcome.CHANGED, self.record, error=str(exc))
        except TransferError as exc:
            if isinstance(exc, ThrottledTooLongError):  # refused for too long: an outage, not this file
                run.stop(str(exc))
            await self.fail(exc.error_class, str(exc))
        finally:
            run.stats.in_flight -= 1

    async def presign(self, early: EarlyRead) -> _LiveUrl | None:
        """Step 1, just in time (a worker is free now). None when the job turns out to exist.

        Each call is one attempt of the file in the ledger: a new pass at it, or a fresh URL. It is
        counted with the presign's outcome, in the same write as the URL's record when it succeeds.
        The file's early read is dropped when it backs off (it lends its slot, holds no buffer).
        """
        run, spec = self.run, self.spec
        request = PresignRequest(
            filename=spec.path.name,
            content_type=None,
            job_id=self.record.job_id,
            transcription_config=spec.settings.wire_transcription_config(),
            tracking=spec.settings.tracking,
            output_config=spec.settings.output_config,
        )
        try:
            response = await self.with_retries(lambda: run.client.presign(request), on_backoff=early.drop)
        except Exception as exc:
            self.record = await run.ledger.count_attempt(self.record)  # a failed presign is one too
            conflict = isinstance(exc, TransferError) and exc.error_class is ErrorClass.CONFLICT
            if conflict and await self.confirm_created():
                return None
            raise
        run.stats.presigns += 1
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
        self.record = await run.ledger.mark_presigned(
            self.record, response.upload.s3_key, echo, attempts=self.record.attempts + 1
        )
        return _LiveUrl(response.upload, time.monotonic() + response.upload.expires_in)

    async def upload(self, url: _LiveUrl, early: EarlyRead) -> None:
        """Step 2: stream the PUT (the first one sends the `early` read). An expired URL means
        presign again, then PUT again (bounded by --retries fresh URLs); a 403 that is not about
        expiry gets one fresh URL, and is permanent if that one is refused too."""
        run = self.run
        refusals = 0
        for fresh_urls in range(run.settings.retries + 1):
            try:
                result = await self.with_retries(functools.partial(self.put, url, early))
            except TransferError as exc:
                if exc.error_class is not ErrorClass.EXPIRED:
                    raise
                if isinstance(exc, UrlRefusedError) and not exc.expired:
                    refusals += 1
                    if refusals > 1:
                        raise TransferError(
                            f"{exc}; a fresh URL did not cure it", ErrorClass.PERMANENT, status=exc.status
                        ) from None
                if fresh_urls == run.settings.retries:
                    raise TransferError(
                        f"{exc}; {fresh_urls} fresh URLs did not help",
                        ErrorClass.TRANSIENT,
                        status=exc.status,
                    ) from None
                fresh = await self.represign(str(exc), early)
                if fresh is None:
                    return  # the job exists after all (confirmed and recorded as created)
                url = fresh
                continue
            run.stats.bytes_sent += result.bytes_sent
            # Written behind: the durable CREATING record that follows carries it to disk first.
            self.record = await run.ledger.mark_uploaded(self.record, result.md5)
            return
        raise AssertionError("unreachable: the loop returns or raises")

    async def put(self, url: _LiveUrl, early: EarlyRead) -> UploadResult:
        """One PUT attempt, the file read from byte 0. A URL too close to its end is not even tried."""
        run = self.run
        if url.seconds_left < min(URL_SAFETY_MARGIN, url.target.expires_in / 4):
            raise UrlRefusedError("upload URL expired (or about to) before the PUT started", expired=True)
        sent = 0

        def progress(nbytes: int) -> None:
            nonlocal sent
            sent += nbytes
            run.stats.bytes_in_flight += nbytes

        try:
            request = PutRequest(
                url.target, self.file, run.upload_options, progress=progress, url_deadline=url.expires_at
            )
            result = await put_file(run.session, request, early)
        except TransferError as exc:  # what S3 answered (or that it did not), for the metrics
            run.stats.requests.request_done("put", exc.status)
            raise
        finally:
            run.stats.bytes_in_flight -= sent
        run.stats.requests.request_done("put", 200)
        return result

    async def represign(self, why: str, early: EarlyRead) -> _LiveUrl | None:
        """A fresh upload URL (same job_id and key); None when the job turns out to exist."""
        log.info("fresh upload URL for %s: %s", self.spec.path, why)
        self.run.stats.represigns += 1
        return await self.presign(early)

    async def create(self) -> None:
        """Step 3, exactly once: the intent is durable before the call; an unknown outcome is asked about.

        The job_id is fixed, so a repeated create can only be refused (409), never a second job;
        asking first (GET) after an unknown outcome still saves the resend and the 409. Retried
        like presign and PUT (`with_retries`): the asking is part of the attempt.
        """
        run, record, spec = self.run, self.record, self.spec
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
        send = functools.partial(run.client.create_from_upload, body, echo=record.echo)
        await self.with_retries(functools.partial(self.create_once, send))

    async def create_from_url(self) -> None:
        """Create from the URL (API mode B), exactly once as `create`: the object's GET URL is
        signed just before each attempt (never stored, never logged), so it is fresh whatever
        waited before it; a plain https URL goes as it was given."""
        run, spec = self.run, self.spec
        remote = spec.remote
        assert remote is not None

        async def attempt() -> None:
            url = remote.fetch_url or await run.cloud().sign_get(remote.url)  # a secret: kept here
            body = CreateFromUrlRequest(
                input_url=url,
                job_id=self.record.job_id,
                model_code=spec.settings.model_code,
                transcription_config=spec.settings.wire_transcription_config(),
                metadata=spec.settings.metadata,
                tracking=spec.settings.tracking,
                output_config=spec.settings.output_config,
            )
            await self.create_once(functools.partial(run.client.create_from_url, body))

        await self.with_retries(attempt)

    async def create_once(self, send: Callable[[], Awaitable[object]]) -> None:
        """One create attempt: the intent durable first, an unknown outcome asked about (GET)."""
        run = self.run
        # Durable before the call: a crash after sending is resolved by asking, never by resending.
        self.record = await run.ledger.mark_creating(self.record, self.record.attempts)
        try:
            await send()
        except TransferError as exc:
            if exc.error_class is ErrorClass.CONFLICT:
                if await self.confirm_created():
                    return
                raise TransferError(f"{exc} (and the job is not visible)", ErrorClass.PERMANENT) from None
            # Timeout, 5xx, lost connection: the job may exist. Ask before it is sent again.
            # A 429 was refused before any work was done: nothing to ask about.
            if exc.is_transient and exc.status != 429 and await self.confirm_created():
                return
            raise
        self.record = await run.ledger.mark_created(self.record)
        run.stats.created += 1
        self.tell(Outcome.CREATED, self.record)

    async def confirm_created(self) -> bool:
        """Ask the server whether the job exists; if it does, record it as created."""
        run, job_id = self.run, self.record.job_id
        job = await self.with_retries(lambda: run.client.get_job(job_id))
        if job is None:
            return False
        self.record = await run.ledger.mark_created(self.record)
        run.stats.already_created += 1
        self.tell(Outcome.ALREADY_CREATED, self.record)
        return True

    # --- retries and outcomes ------------------------------------------------------------------

    async def with_retries(
        self, operation: Callable[[], Awaitable[T]], *, on_backoff: Callable[[], None] | None = None
    ) -> T:
        """Run one request of the file's, retrying transient errors; each retry is an attempt.
        `on_backoff` lets go of what the file must not hold while it waits without its slot."""
        run = self.run
        if not run.stats.rates:
            run.stats.rates = run.rates.live  # updated in place: the progress display shows them

        async def on_retry(exc: TransferError) -> None:
            self.count_retry(exc)
            if on_backoff is not None:
                on_backoff()
            self.record = await run.ledger.count_attempt(self.record)

        return await retry_transient(
            run.policy, operation, on_retry, deadline=self.deadline, sleep=self.sleep_without_slot
        )

    async def sleep_without_slot(self, seconds: float) -> None:
        """Back off without holding a slot: another file works while this one waits out a
        Retry-After, so throttling slows the pool by its rate, not by idle workers."""
        self.run.slots.release()
        self.run.stats.in_flight -= 1  # in flight = holding a slot: never more than --concurrency
        try:
            await anyio.sleep(seconds)
        finally:
            with anyio.CancelScope(shield=True):
                await self.run.slots.acquire()
            self.run.stats.in_flight += 1

    def count_retry(self, exc: TransferError) -> None:
        stats = self.run.stats
        stats.retries += 1
        if isinstance(exc, StalledUploadError):
            kind = "stalled upload"
        else:
            kind = f"HTTP {exc.status}" if exc.status else "connection"
        stats.retry_classes[kind] += 1

    async def fail(self, error_class: ErrorClass, message: str) -> None:
        run = self.run
        record = self.record = await run.ledger.mark_failed(self.record, message, error_class)
        failure = Failure(record.path, record.job_id, error_class.value, message, record.source, record.line)
        run.stats.add_failure(failure)
        self.tell(Outcome.FAILED, record, error_class=error_class.value, error=message)
        if error_class is not ErrorClass.PERMANENT:
            return  # out of retries on transient errors: tried again next run, not a --max-failures one
        run.permanent_failures += 1
        limit = run.settings.max_failures
        if limit is not None and run.permanent_failures >= limit and not run.stopping.is_set():
            run.stop(f"--max-failures {limit} reached")

    def tell(
        self,
        outcome: Outcome,
        record: FileRecord,
        *,
        error_class: str | None = None,
        error: str | None = None,
    ) -> None:
        spec = self.spec
        self.run.tell(
            FileResult(spec.path_text, spec.source, spec.line, outcome, record.job_id, error_class, error)
        )
