"""What every file of one run shares: where it records, how it talks, its counters and its stop.

A `RunContext` is made once per run by a command and handed to each file's `Journey` and to the
pool; a journey holds only its own file's steps. Per-file outcomes go to the run's counters, to
the log, and to the library caller's `on_result` callback, from one place (`RunContext.tell`).
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import anyio
from aiolimiter import AsyncLimiter

from pipeline.api.client import SlngClient
from pipeline.config.settings import Settings
from pipeline.flow.admission import FAILED_BEFORE, AdmissionRules, Verdict
from pipeline.flow.cloud_rows import open_stores
from pipeline.flow.signals import SignalWatch
from pipeline.flow.standing import StandingFailures
from pipeline.ledger import Glance, Ledger
from pipeline.logs import json_lines, log
from pipeline.observe.stats import RunStats
from pipeline.sources.rows import FileSpec, Rejection
from pipeline.storage.upload import UploadOptions
from pipeline.transport.rates import RateControl
from pipeline.transport.retry import RetryPolicy

if TYPE_CHECKING:
    from pipeline.storage.cloud.stores import CloudStores


class Outcome(enum.Enum):
    """What became of one file in a run, as a library caller's `on_result` hears it."""

    CREATED = "created"  # its job was created now
    ALREADY_CREATED = "already_created"  # its job turned out to exist (an earlier run, a lost answer)
    SKIPPED = "skipped"  # done (or failed for good) in an earlier run; not sent again
    FAILED = "failed"
    CHANGED = "changed"  # it changed while being sent: the next run takes the new version
    REJECTED = "rejected"  # a bad row, or a file that cannot be sent as it is


@dataclass(frozen=True, slots=True)
class FileResult:
    """One file's outcome: where it was named, its job, and what went wrong if anything did."""

    path: str | None  # None for a row too broken to name one
    source: str  # the manifest, folder or stdin that named it
    line: int | None  # its row in a manifest
    outcome: Outcome
    job_id: str | None = None
    error_class: str | None = None  # transient or permanent (pipeline.ErrorClass values)
    error: str | None = None


ResultCallback = Callable[[FileResult], None]

# How loud each outcome is in the log: what a user running the command expects to see by default.
_LEVELS = {
    Outcome.CREATED: logging.INFO,
    Outcome.ALREADY_CREATED: logging.INFO,
    Outcome.SKIPPED: logging.DEBUG,
    Outcome.FAILED: logging.ERROR,
    Outcome.CHANGED: logging.WARNING,
    Outcome.REJECTED: logging.WARNING,
}
_STATES = {  # the ledger's state after the outcome, when the caller does not know better
    Outcome.CREATED: "created",
    Outcome.ALREADY_CREATED: "created",
    Outcome.FAILED: "failed",
    Outcome.CHANGED: "changed",
    Outcome.REJECTED: "rejected",
}


def log_outcome(
    result: FileResult, run_id: str, *, state: str | None = None, earlier_run: bool = False, why: str = ""
) -> None:
    """One log line per file outcome; with --log-format json, an event `file_<outcome>` whose
    fields are documented in the README (path, row, source, job_id, state, class, error...)."""
    level = _LEVELS[result.outcome]
    if level == logging.INFO and not json_lines():
        level = logging.DEBUG  # a line per file sent well: a collector's record, noise in a terminal
    if not log.isEnabledFor(level):
        return
    where = result.source if result.line is None else f"{result.source}:{result.line}"
    path = result.path or "(no path)"
    match result.outcome:
        case Outcome.REJECTED:
            rejection = Rejection(result.source, result.line, result.path, result.error or "")
            text = f"rejected: {rejection.message()}"
        case Outcome.FAILED if earlier_run:
            text = (
                f"failed in an earlier run ({result.error_class}), not sent again: "
                f"{where}: {path}: {result.error}"
            )
        case Outcome.FAILED:
            text = f"failed ({result.error_class}): {where}: {path}: {result.error}"
        case Outcome.CHANGED:
            text = f"changed during upload, sent again next run: {where}: {result.error}"
        case Outcome.SKIPPED:
            text = f"skipped ({why or 'not sent'}): {where}: {path}"
        case Outcome.ALREADY_CREATED:
            text = f"already on the server: {where}: {path} (job {result.job_id})"
        case _:
            text = f"created: {where}: {path} (job {result.job_id})"
    fields: dict[str, object] = {
        "event": f"file_{result.outcome.value}",
        "run_id": run_id,
        "path": result.path,
        "source": result.source,
        "row": result.line,
        "job_id": result.job_id,
        "state": state or _STATES.get(result.outcome, "skipped"),
    }
    if result.error is not None:
        fields["class"] = result.error_class or result.outcome.value
        fields["error"] = result.error
    if result.outcome is Outcome.FAILED:
        fields["earlier_run"] = earlier_run
    log.log(level, "%s", text, extra={"fields": fields})


class StopHandle:
    """A graceful stop for a library caller, as SIGTERM is for the command: no new file is
    started, files in flight get `--grace` seconds, the ledger is flushed. Safe to call at any
    time and more than once; a stop asked for before the run starts ends it at once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._listener: Callable[[str], None] | None = None

    def stop(self, reason: str = "stopped by the caller") -> None:
        if self.reason is None:
            self.reason = reason
        if self._listener is not None:
            self._listener(reason)

    def listen(self, listener: Callable[[str], None] | None) -> None:
        """The running pool's reaction (or None once it is over); told at once of an earlier stop."""
        self._listener = listener
        if listener is not None and self.reason is not None:
            listener(self.reason)


class RunContext:
    """The run-wide state of one submit, retry-failed or work run."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        client: SlngClient,
        session: aiohttp.ClientSession,
        rates: RateControl,
        signals: SignalWatch | None = None,
        *,
        on_result: ResultCallback | None = None,
        stop_handle: StopHandle | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.client = client
        self.session = session
        self.rates = rates
        self.signals = signals or SignalWatch()  # the command's; inert for a library caller's run
        self.on_result = on_result
        self.stop_handle = stop_handle or StopHandle()
        self.stats = RunStats(run_id=uuid.uuid4().hex[:12], requests=client.requests)
        self.standing = StandingFailures(self.stats)  # earlier runs' failures, reported again
        self.policy = RetryPolicy(retries=settings.retries, max_elapsed=settings.retry_max_elapsed)
        self.upload_options = UploadOptions(
            chunk_size=settings.chunk_size,
            stall_timeout=settings.stall_timeout,
            bandwidth=AsyncLimiter(settings.max_bandwidth, 1.0) if settings.max_bandwidth else None,
        )
        self.rules = AdmissionRules(force=settings.force, settle_ns=int(settings.settle * 1e9))
        self.slots = anyio.CapacityLimiter(settings.concurrency)  # files actively worked on
        self.stopping = anyio.Event()  # no new files are taken once set
        self.signalled = False  # a SIGINT/SIGTERM came: the run ends as stopped (exit 6), whatever else
        # What a work source runs in: `stop()` cancels it, so a source blocked on something slow
        # (stdin, a claim query) does not hold the run open.
        self.producer_scope = anyio.CancelScope()
        self.permanent_failures = 0
        self._cloud: CloudStores | None = None

    def cloud(self) -> CloudStores:
        """The clients that sign URL rows' GET URLs, one per bucket, made when the first is needed."""
        if self._cloud is None:
            self._cloud = open_stores(self.settings)
        return self._cloud

    def skips(self, verdict: Verdict, spec: FileSpec, known: Glance | None) -> bool:
        """Count and report a verdict that leaves the file alone; False when it is to be worked on.
        The producer's glance and the journey's admission both ask (see flow.admission). A file
        that failed in an earlier run is not sent again, but reported as failed again (standing)."""
        job_id = known.job_id if known is not None else None
        state = known.state.value if known is not None else None
        if verdict is Verdict.SKIP_DONE:
            self.stats.skipped_done += 1
            if known is not None and known.settings_hash not in (None, spec.settings.settings_hash()):
                self.stats.skipped_relabelled += 1  # a label is no new recognition: not resent
            if self.on_result is not None or log.isEnabledFor(logging.DEBUG):
                outcome = FileResult(spec.path_text, spec.source, spec.line, Outcome.SKIPPED, job_id)
                self.tell(outcome, state=state, why="done before")
        elif verdict in FAILED_BEFORE:
            assert known is not None, "only a file the ledger knows failed before"
            failure = self.standing.report(spec, verdict, known)
            outcome = FileResult(
                spec.path_text,
                spec.source,
                spec.line,
                Outcome.FAILED,
                job_id,
                failure.error_class,
                failure.error,
            )
            self.tell(outcome, state=state, earlier_run=True)
        elif verdict is Verdict.SKIP_UNSETTLED:
            self.stats.skipped_unsettled += 1
            if self.on_result is not None or log.isEnabledFor(logging.DEBUG):
                outcome = FileResult(spec.path_text, spec.source, spec.line, Outcome.SKIPPED, job_id)
                self.tell(outcome, state=state, why="still changing")
        else:
            return False
        return True

    def tell(
        self, result: FileResult, *, state: str | None = None, earlier_run: bool = False, why: str = ""
    ) -> None:
        """The one place a file's outcome is reported: one log event (`file_<outcome>`, see
        `log_outcome`), then the library caller's `on_result`, if it asked (its errors are its own)."""
        log_outcome(result, self.stats.run_id, state=state, earlier_run=earlier_run, why=why)
        if self.on_result is None:
            return
        try:
            self.on_result(result)
        except Exception:
            log.exception("the on_result callback raised for %s; the run goes on", result.path)

    async def reject(self, rejection: Rejection) -> None:
        self.stats.rejected += 1
        await self.ledger.reject(self.stats.run_id, rejection)
        self.tell(
            FileResult(
                rejection.path,
                rejection.source,
                rejection.line,
                Outcome.REJECTED,
                error=rejection.reason,
            )
        )

    def close(self) -> None:
        """Let go of what the run holds beyond its connection: its file-read threads."""
        self.upload_options.reads.close()

    def stop(self, why: str) -> None:
        if not self.stopping.is_set():
            log.warning("stopping: %s; no new files will be started", why)
            self.stats.interrupted = why
            self.stopping.set()
            self.producer_scope.cancel()  # unblocks a source waiting on something slow (stdin)
