"""A failure stays visible until it is resolved (issue 20, point 4).

A rerun retries what failed for a transient reason; what failed for good is not sent again, but
is reported again, in the summary, the summary JSON and the log, and keeps the exit code at 1.
The same holds for a file whose job the ledger last saw FAILED on the server, until
`retry-failed` (or --force) gives it a new job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.commands.retry_failed import resubmit_failed
from pipeline.errors import ExitCode
from pipeline.ledger import FileState, SqliteLedger
from pipeline.observe.stats import summary_lines
from pipeline.sandbox import FaultPlan, Sandbox
from tests.support.audio import make_tree, write_wav
from tests.support.runs import cli_env, run_cli, run_submit, settings_for

pytestmark = pytest.mark.anyio

REFUSED_PUT = {"operations": {"put": {"signature_mismatch": {"probability": 1.0}}}}


def plan(data: dict[str, Any]) -> FaultPlan:
    return FaultPlan.model_validate(data)


def garbage_wav(path: Path) -> Path:
    """A .wav name over bytes that are no audio container: the sandbox's job ends FAILED."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not audio, just text pretending\n" * 50)
    return path


def creates(sb: Sandbox) -> int:
    return len(sb.jobs().attempts)


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503, "nth": [1]},
        {"status": 500, "nth": [1]},
        {"status": 502, "nth": [1]},
    ],
    ids=["503", "500", "502"],
)
async def test_a_rerun_retries_a_transient_failure(
    sandbox: Sandbox, tmp_path: Path, fault: dict[str, Any]
) -> None:
    """Out of retries on a transient error of its own is tried again by the next run. (A 429 never
    fails a file, and every request failing is an outage that pauses the run: tests/transport.)"""
    make_tree(tmp_path / "a", 2)
    sandbox.set_faults(plan({"operations": {"presign": {"errors": [fault]}}}))
    first = await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db", retries=0)
    assert (first.created, first.failed) == (1, 1) and first.exit_code() is ExitCode.FAILED

    sandbox.set_faults(FaultPlan())
    again = await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db", retries=0)

    assert (again.created, again.failed, again.skipped_done) == (1, 0, 1)
    assert again.exit_code() is ExitCode.OK


async def test_a_permanent_failure_is_reported_again_not_resubmitted(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    (audio,) = make_tree(tmp_path / "a", 1)
    manifest = tmp_path / "batch.csv"
    manifest.write_text(f"path\n{audio}\n")
    sandbox.set_faults(plan(REFUSED_PUT))
    first = await run_submit(sandbox, [manifest], tmp_path / "l.db")
    assert first.failed == 1
    (recorded,) = SqliteLedger(tmp_path / "l.db").records()
    assert recorded.state is FileState.FAILED and recorded.error_class == "permanent"
    sandbox.set_faults(FaultPlan())
    presigns = sandbox.stats().requests["presign"].total

    again = await run_submit(sandbox, [manifest], tmp_path / "l.db")

    assert sandbox.stats().requests["presign"].total == presigns, "not sent again"
    assert (again.queued, again.skipped_done, again.failed, again.failed_earlier) == (0, 0, 1, 1)
    assert again.exit_code() is ExitCode.FAILED
    (failure,) = again.failures
    assert (failure.path, failure.source, failure.line) == (str(audio), str(manifest), 2)
    assert failure.earlier and failure.error_class == "permanent" and failure.job_id == recorded.job_id
    assert failure.error == recorded.error
    lines = "\n".join(summary_lines(again))
    assert f"FAILED {audio} ({manifest}:2): {recorded.error}" in lines
    assert "--force" in lines and "fix" in lines
    (listed,) = again.summary()["failures"]
    assert listed["earlier_run"] is True and listed["line"] == 2 and listed["job_id"] == recorded.job_id
    assert again.summary()["counts"]["failed"] == 1


async def test_force_takes_a_permanent_failure_again(sandbox: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "a", 1)
    sandbox.set_faults(plan(REFUSED_PUT))
    await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db")
    sandbox.set_faults(FaultPlan())

    forced = await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db", force=True)

    assert (forced.created, forced.failed) == (1, 0) and forced.exit_code() is ExitCode.OK


async def test_a_job_failed_on_the_server_keeps_the_exit_at_1_until_retry_failed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    make_tree(tmp_path / "in", 1)
    bad = garbage_wav(tmp_path / "in" / "broken.wav")
    ledger = tmp_path / "l.db"
    waited = await run_submit(sandbox, [tmp_path / "in"], ledger, wait=True)
    assert waited.job_statuses == {"DONE": 1, "FAILED": 1}
    made = creates(sandbox)

    again = await run_submit(sandbox, [tmp_path / "in"], ledger)

    assert creates(sandbox) == made
    assert (again.skipped_done, again.failed, again.failed_earlier) == (1, 1, 1)
    assert again.exit_code() is ExitCode.FAILED
    (failure,) = again.failures
    assert failure.path == str(bad) and failure.error_class == "job_failed" and failure.earlier
    assert "retry-failed" in "\n".join(summary_lines(again))

    # With --wait the same job is listed once, as the file's failure (not twice).
    waited_again = await run_submit(sandbox, [tmp_path / "in"], ledger, wait=True)
    assert waited_again.failed == 1 and waited_again.jobs_failed == []
    assert waited_again.exit_code() is ExitCode.FAILED

    await resubmit_failed(settings_for(sandbox, ledger))  # a new job: not known to have failed yet
    resolved = await run_submit(sandbox, [tmp_path / "in"], ledger)
    assert (resolved.skipped_done, resolved.failed) == (2, 0) and resolved.exit_code() is ExitCode.OK


# --- through the command line --------------------------------------------------------------------


def test_the_cli_rerun_reports_the_failure_in_summary_json_and_log_and_exits_1(
    sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    (audio,) = make_tree(tmp_path / "a", 1)
    env = cli_env(sandbox_thread, tmp_path / "l.db")
    sandbox_thread.set_faults(plan(REFUSED_PUT))
    first = run_cli("submit", str(tmp_path / "a"), env=env, cwd=tmp_path)
    assert first.returncode == ExitCode.FAILED, first.stderr
    sandbox_thread.set_faults(FaultPlan())
    fine = write_wav(tmp_path / "a" / "later.wav", freq=880.0)

    summary = tmp_path / "s.json"
    again = run_cli(
        "submit", str(tmp_path / "a"), "--summary-json", str(summary), "--log-format", "json",
        env=env, cwd=tmp_path,
    )  # fmt: skip

    assert again.returncode == ExitCode.FAILED, again.stderr
    document = json.loads(summary.read_text())
    assert document["exit_code"] == again.returncode
    assert document["counts"]["created"] == 1 and document["counts"]["failed"] == 1
    (listed,) = document["failures"]
    assert listed["path"] == str(audio) and listed["earlier_run"] is True
    assert listed["class"] == "permanent" and "SignatureDoesNotMatch" in listed["error"]
    assert str(fine) not in again.stderr  # the summary is a run_finished event, not the text table
    events = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
    (event,) = [e for e in events if e.get("event") == "file_failed"]
    assert event["path"] == str(audio) and event["earlier_run"] is True and event["class"] == "permanent"

    text = run_cli("submit", str(tmp_path / "a"), env=env | {"SLNG_BULK_LOG_LEVEL": "info"}, cwd=tmp_path)
    assert text.returncode == ExitCode.FAILED
    assert any("failed in an earlier run" in line and str(audio) in line for line in text.stderr.splitlines())


def test_retry_failed_writes_its_exit_code_into_the_summary_json(
    sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    bad = garbage_wav(tmp_path / "in" / "broken.wav")
    env = cli_env(sandbox_thread, tmp_path / "l.db")
    waited = run_cli("submit", str(tmp_path / "in"), "--wait", env=env, cwd=tmp_path)
    assert waited.returncode == ExitCode.FAILED, waited.stderr  # its job FAILED on the server
    bad.unlink()  # gone since: retry-failed rejects it (exit 3)

    summary = tmp_path / "retry.json"
    retried = run_cli("retry-failed", "--summary-json", str(summary), env=env, cwd=tmp_path)

    assert retried.returncode == ExitCode.REJECTED, retried.stderr
    assert json.loads(summary.read_text())["exit_code"] == retried.returncode
