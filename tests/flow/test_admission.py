"""The skip rules, as a table: what the ledger says about a file, the flags, and the verdict."""

from __future__ import annotations

import pytest

from pipeline.errors import ErrorClass
from pipeline.flow.admission import AdmissionRules, Verdict
from pipeline.ledger import CHANGED, FileState

PERMANENT, TRANSIENT = ErrorClass.PERMANENT.value, ErrorClass.TRANSIENT.value
SECOND = 1_000_000_000


@pytest.mark.parametrize(
    ("state", "error_class", "force", "verdict"),
    [
        (None, None, False, Verdict.WORK),
        (FileState.PENDING, None, False, Verdict.WORK),
        (FileState.PRESIGNED, None, False, Verdict.WORK),
        (FileState.UPLOADED, None, False, Verdict.WORK),
        (FileState.CREATING, None, False, Verdict.WORK),
        (FileState.CREATED, None, False, Verdict.SKIP_DONE),
        (FileState.FAILED, PERMANENT, False, Verdict.SKIP_FAILED),
        (FileState.FAILED, TRANSIENT, False, Verdict.RESTART),
        (FileState.FAILED, CHANGED, False, Verdict.RESTART),
        (FileState.CREATED, None, True, Verdict.RENEW),
        (FileState.FAILED, PERMANENT, True, Verdict.RENEW),
        (FileState.FAILED, TRANSIENT, True, Verdict.RENEW),
        (FileState.UPLOADED, None, True, Verdict.WORK),  # --force never throws away work in progress
    ],
)
def test_verdict_by_recorded_state(
    state: FileState | None, error_class: str | None, force: bool, verdict: Verdict
) -> None:
    assert AdmissionRules(force=force).verdict(state, error_class) is verdict


def test_a_job_the_server_failed_is_reported_again_until_retry_failed_or_force() -> None:
    rules = AdmissionRules()
    assert rules.verdict(FileState.CREATED, None, job_status="FAILED") is Verdict.SKIP_JOB_FAILED
    assert rules.verdict(FileState.CREATED, None, job_status="DONE") is Verdict.SKIP_DONE
    assert AdmissionRules(force=True).verdict(FileState.CREATED, None, job_status="FAILED") is Verdict.RENEW


def test_settle_holds_back_only_files_that_would_be_worked_on() -> None:
    rules = AdmissionRules(settle_ns=120 * SECOND)
    now = 1_000 * SECOND
    fresh, old = now - 5 * SECOND, now - 600 * SECOND
    assert rules.verdict(None, None, mtime_ns=fresh, now_ns=now) is Verdict.SKIP_UNSETTLED
    assert rules.verdict(None, None, mtime_ns=old, now_ns=now) is Verdict.WORK
    assert rules.verdict(FileState.CREATED, None, mtime_ns=fresh, now_ns=now) is Verdict.SKIP_DONE
    assert rules.verdict(None, None) is Verdict.WORK  # at admission the producer already applied it
