"""What a run tells its user: live counters, the end-of-run summary, and per-file exports.

`RunStats` is the one place counters live; the progress display, the summary table and the
summary JSON all read it, so they never disagree.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ErrorClass, ExitCode
from pipeline.redact import redact
from pipeline.transport.request_tally import RequestTally


@dataclass
class Failure:
    path: str
    job_id: str | None
    error_class: str
    error: str
    source: str  # the manifest (or directory, or stdin) that named the file
    line: int | None  # its row in a manifest
    earlier: bool = False  # failed in an earlier run, reported again (not sent again) by this one

    @property
    def where(self) -> str:
        """`manifest.csv:12`, as rejections name a row: the place to fix or look."""
        return self.source if self.line is None else f"{self.source}:{self.line}"


@dataclass
class RunStats:
    """Counters of one run. Mutated only from the event loop thread."""

    run_id: str
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    rows_seen: int = 0  # every file named by the sources so far (rejected and skipped ones too)
    sources_read: bool = False  # the sources are read to their end: rows_seen is the total
    queued: int = 0  # taken for work this run
    skipped_done: int = 0  # already done in an earlier run
    skipped_unsettled: int = 0  # still being written (--settle)
    skipped_relabelled: int = 0  # of skipped_done: new tracking, metadata or output_config; not resent
    skipped_links: int = 0  # symbolic links a folder walk left out (--follow-symlinks takes them)
    skipped_hidden: int = 0  # dot-files and dot-folders a folder walk left out
    rejected: int = 0
    created: int = 0
    already_created: int = 0  # confirmed to exist on the server (resume, 409)
    failed: int = 0  # failed in this run, or in an earlier one and not resolved since
    failed_earlier: int = 0  # of `failed`: reported again from an earlier run, not sent again
    changed: int = 0  # files that changed during upload (picked up next run)
    in_flight: int = 0
    bytes_total: int = 0  # bytes of the files queued
    bytes_listed: int = 0  # what uploading every file named so far would move (URL rows: nothing)
    bytes_sent: int = 0  # confirmed uploaded bytes
    bytes_in_flight: int = 0
    presigns: int = 0
    represigns: int = 0  # URLs replaced because they expired or were refused
    retries: int = 0
    interrupted: str | None = None  # why the run stopped early, if it did
    auth_failure: str | None = None
    failures: list[Failure] = field(default_factory=list)
    retry_classes: Counter[str] = field(default_factory=Counter)
    rates: dict[str, dict[str, float]] = field(default_factory=dict)
    job_statuses: dict[str, int] = field(default_factory=dict)  # after --wait
    jobs_failed: list[str] = field(default_factory=list)  # FAILED on the server, with its message
    failed_job_ids: set[str] = field(default_factory=set)  # jobs already listed as files' failures
    transcripts_written: int = 0
    fetch_errors: list[str] = field(default_factory=list)
    requests: RequestTally = field(default_factory=RequestTally)  # the API client's, once connected

    MAX_LISTED_FAILURES = 1000

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def finished(self) -> int:
        return self.created + self.already_created + self.failed + self.changed

    @property
    def files_known(self) -> int:
        """Files named so far: the run's total once `sources_read`, a lower bound before."""
        return self.rows_seen

    @property
    def files_done(self) -> int:
        """Files whose outcome in this run is decided, whatever it is (skips and rejections too)."""
        return self.finished + self.skipped_done + self.skipped_unsettled + self.rejected

    @property
    def bytes_moving(self) -> int:
        """Bytes handed to the connection so far: uploads done and the ones under way."""
        return self.bytes_sent + self.bytes_in_flight

    def row_seen(self, upload_bytes: int = 0) -> None:
        """One more file named by the sources (a rejected row moves no byte)."""
        self.rows_seen += 1
        self.bytes_listed += upload_bytes

    def add_failure(self, failure: Failure) -> None:
        self.failed += 1
        if failure.earlier:
            self.failed_earlier += 1
        if len(self.failures) < self.MAX_LISTED_FAILURES:
            self.failures.append(failure)

    def exit_code(self, error_on_nothing: bool = False) -> ExitCode:
        if self.auth_failure:
            return ExitCode.AUTH
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.failed or self.changed or self.jobs_failed or self.fetch_errors:
            return ExitCode.FAILED
        if self.rejected:
            return ExitCode.REJECTED
        if error_on_nothing and self.queued == 0:
            return ExitCode.NOTHING_TO_DO
        return ExitCode.OK

    def nothing_to_do(self) -> bool:
        """Nothing taken, refused or failed: a failure of an earlier run that stands is not "nothing"."""
        return self.queued == 0 and self.rejected == 0 and self.failed == 0

    def summary(self) -> dict[str, Any]:
        elapsed = self.elapsed
        return {
            "run_id": self.run_id,
            "started_at": self.started_wall,
            "elapsed_seconds": round(elapsed, 3),
            "counts": {
                "rows_seen": self.rows_seen,
                "queued": self.queued,
                "created": self.created,
                "already_created": self.already_created,
                "skipped_done": self.skipped_done,
                "skipped_unsettled": self.skipped_unsettled,
                "skipped_relabelled": self.skipped_relabelled,
                "skipped_links": self.skipped_links,
                "skipped_hidden": self.skipped_hidden,
                "rejected": self.rejected,
                "failed": self.failed,
                "failed_earlier": self.failed_earlier,
                "changed_during_upload": self.changed,
            },
            "bytes": {"queued": self.bytes_total, "uploaded": self.bytes_sent},
            "throughput": {
                "files_per_second": round(self.finished / elapsed, 2) if elapsed > 0 else 0.0,
                "bytes_per_second": round(self.bytes_sent / elapsed) if elapsed > 0 else 0,
            },
            "requests": {
                "presigns": self.presigns,
                "represigns": self.represigns,
                "retries": self.retries,
                "retries_by_class": dict(self.retry_classes),
            },
            "rates": self.rates,
            "jobs": {
                "by_status": self.job_statuses,
                "failed": self.jobs_failed[: self.MAX_LISTED_FAILURES],
                "transcripts_written": self.transcripts_written,
                "fetch_errors": self.fetch_errors,
            },
            "interrupted": self.interrupted,
            "auth_failure": self.auth_failure,
            "failures": [
                {
                    "path": f.path,
                    "source": f.source,
                    "line": f.line,
                    "job_id": f.job_id,
                    "class": f.error_class,
                    "error": redact(f.error),
                    "earlier_run": f.earlier,
                }
                for f in self.failures
            ],
        }


def write_private(path: Path, text: str) -> None:
    """Write a report readable by the owner only (it names other people's files and jobs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(tmp, path)


def write_summary_json(path: Path, stats: RunStats, exit_code: ExitCode) -> None:
    """The run's summary for scripts, with the exit code the command ends with."""
    document = stats.summary() | {"exit_code": int(exit_code)}
    write_private(path, json.dumps(document, indent=2, sort_keys=True) + "\n")


def human_bytes(count: float) -> str:
    """Decimal (SI) units everywhere, bar and summary alike: 1 kB = 1000 B, 1 MB = 1000 kB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 rejected row`, `2 rejected rows`: the count with the noun that agrees with it."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _rps(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def slowed_rates_text(rates: Mapping[str, Mapping[str, float]]) -> str:
    """For live progress: each rate the server has throttled, what it accepts against the ceiling,
    e.g. "create 19.8/80 rps accepted (sending 18.0)"; "" if none was throttled."""
    return ", ".join(
        f"{name} {view.get('accepted', 0.0):.1f}/{view['ceiling']:g} rps accepted"
        f" (sending {_rps(view['current'])})"
        for name, view in rates.items()
        if view.get("throttles", 0)
    )


def accepted_rates_text(rates: Mapping[str, Mapping[str, float]]) -> str:
    """For the progress line: each rate the server has throttled, accepted against the ceiling,
    e.g. "create 19.8/80 rps"; "" while none was throttled."""
    return ", ".join(
        f"{name} {view.get('accepted', 0.0):.1f}/{view['ceiling']:g} rps"
        for name, view in rates.items()
        if view.get("throttles", 0)
    )


def throttle_summary_lines(rates: Mapping[str, Mapping[str, float]]) -> list[str]:
    """For the end-of-run summary: each rate the server throttled, what it accepted on average
    against the ceiling, how far the rate went down, and where it ended."""
    return [
        f"{name} rate: {view.get('accepted_mean', 0.0):.1f}/{view['ceiling']:g} rps accepted;"
        f" throttled {int(view['throttles'])}x by 429/503, lowest {_rps(view['lowest'])},"
        f" ended at {_rps(view['current'])}"
        for name, view in rates.items()
        if view.get("throttles", 0)
    ]


def summary_lines(stats: RunStats) -> Iterator[str]:
    """The end-of-run table, as plain lines (fits logs and terminals alike)."""
    rows = [
        ("created", stats.created),
        ("already on server", stats.already_created),
        ("skipped (done before)", stats.skipped_done),
        ("skipped (still changing)", stats.skipped_unsettled),
        ("rejected (bad input)", stats.rejected),
        ("failed", stats.failed),
        ("changed during upload", stats.changed),
    ]
    yield f"slng-bulk run {stats.run_id}: {stats.elapsed:.1f} s, {human_bytes(stats.bytes_sent)} uploaded"
    for label, value in rows:
        yield f"  {label:<26}{value:>10}"
    if stats.retries:
        by_class = ", ".join(f"{k} {v}" for k, v in stats.retry_classes.items())
        yield f"  {'retries':<26}{stats.retries:>10}  ({by_class})"
    for line in throttle_summary_lines(stats.rates):
        yield f"  {line}"
    if stats.represigns:
        yield f"  {'fresh upload URLs':<26}{stats.represigns:>10}"
    for failure in stats.failures[:20]:
        earlier = " (failed in an earlier run, not sent again)" if failure.earlier else ""
        yield f"  FAILED {failure.path} ({failure.where}): {failure.error}{earlier}"
    if len(stats.failures) > 20:
        yield f"  ... {stats.failed - 20} more failures: see `slng-bulk report --state failed`"
    yield from _failure_hints(stats.failures)
    if stats.job_statuses:
        yield "  jobs: " + ", ".join(
            f"{status} {count}" for status, count in sorted(stats.job_statuses.items())
        )
    for line in stats.jobs_failed[:20]:
        yield f"  JOB FAILED {line}"
    if stats.transcripts_written:
        yield f"  {'transcripts written':<26}{stats.transcripts_written:>10}"
    for line in stats.fetch_errors[:20]:
        yield f"  FETCH FAILED {line}"
    if stats.interrupted:
        yield f"  stopped early: {stats.interrupted}"
    if stats.auth_failure:
        yield f"  authentication failure: {stats.auth_failure}"


JOB_FAILED_CLASS = "job_failed"
"""The class of a failure that is a job FAILED on the server (not an ErrorClass: the file went)."""


def _failure_hints(failures: list[Failure]) -> Iterator[str]:
    """What to do about the failures listed: each is reported by every run until it is resolved."""
    classes = {f.error_class for f in failures}
    if ErrorClass.PERMANENT.value in classes:
        yield (
            "  hint: fix the input and rerun (a changed file is a new file), or rerun with --force"
            " to send it again as it is; until then every run reports it and exits 1"
        )
    if JOB_FAILED_CLASS in classes:
        yield "  hint: `slng-bulk retry-failed` resubmits files whose job FAILED on the server (or --force)"
