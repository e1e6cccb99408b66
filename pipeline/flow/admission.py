"""Whether a row is worked on, and how: the skip rules in one place.

The same rules run twice on purpose: on the producer's glance at the ledger (cheap, a batch per
query, so a rerun of a finished manifest queues nothing) and on the record the ledger returns
when the file is admitted (authoritative: the same file may have come twice in one run).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pipeline.errors import ErrorClass
from pipeline.ledger import FileState

JOB_FAILED = "FAILED"  # the server's status of a job that failed


class Verdict(enum.Enum):
    SKIP_DONE = "done"  # its job exists (an earlier run, or earlier in this one)
    SKIP_FAILED = "failed permanently"  # not sent again, reported again: fixed input or --force
    SKIP_JOB_FAILED = "job failed"  # its job FAILED on the server: reported again; retry-failed
    SKIP_UNSETTLED = "still being written"  # modified within --settle seconds: the next run takes it
    WORK = "work"  # new, or resumed from the recorded state
    RESTART = "restart"  # ran out of retries last time: the same job_id, from the first step
    RENEW = "renew"  # --force on a created or failed file: a new job_id, the old job kept in history


FAILED_BEFORE = (Verdict.SKIP_FAILED, Verdict.SKIP_JOB_FAILED)
"""Verdicts on a file that failed in an earlier run: not sent again, but reported as failed again."""


@dataclass(frozen=True, slots=True)
class AdmissionRules:
    force: bool = False
    settle_ns: int = 0  # --settle, in nanoseconds

    def verdict(
        self,
        state: FileState | None,
        error_class: str | None,
        *,
        job_status: str | None = None,
        mtime_ns: int | None = None,
        now_ns: int = 0,
    ) -> Verdict:
        """`state`/`error_class`/`job_status` as the ledger has them (None: never seen);
        `mtime_ns` to apply --settle."""
        if self.force and state in (FileState.CREATED, FileState.FAILED):
            return Verdict.RENEW
        if state is FileState.CREATED:
            return Verdict.SKIP_JOB_FAILED if job_status == JOB_FAILED else Verdict.SKIP_DONE
        if state is FileState.FAILED and error_class == ErrorClass.PERMANENT.value:
            return Verdict.SKIP_FAILED
        if mtime_ns is not None and self.settle_ns and now_ns - mtime_ns < self.settle_ns:
            return Verdict.SKIP_UNSETTLED
        if state is FileState.FAILED:
            return Verdict.RESTART
        return Verdict.WORK
