"""The commands after `submit` keep their promises for objects in a bucket: `status` sees a job
FAILED on the server, `report` shows the object's history, `retry-failed` gives it a new job (the
old one kept in the history), `fetch` writes the transcripts, and `reconcile` from the bucket
rebuilds a lost ledger so that the next `submit` creates nothing. The failed object holds bytes
that are no audio: the sandbox downloads it and ends its job FAILED ("could not be decoded")."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.sandbox import Sandbox
from tests.cloud.helpers import put_audio, s3_env
from tests.support.localstack import LocalStackS3
from tests.support.runs import cli_env, run_cli, successful_creates

pytestmark = pytest.mark.localstack


def job_of(ledger: Path, url: str) -> tuple[str, str | None]:
    with sqlite3.connect(ledger) as conn:
        row = conn.execute("SELECT job_id, job_status FROM files WHERE path = ?", (url,)).fetchone()
    assert row is not None, url
    return row[0], row[1]


def test_status_report_retry_failed_fetch_and_reconcile(
    aws_env: LocalStackS3, sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    bucket = aws_env.create_bucket()
    put_audio(aws_env, bucket, ["calls/good.wav"])
    aws_env.client().put_object(Bucket=bucket, Key="calls/bad.wav", Body=b"these bytes are no audio" * 20)
    good, bad = f"s3://{bucket}/calls/good.wav", f"s3://{bucket}/calls/bad.wav"
    ledger = tmp_path / "l.db"
    env = cli_env(sandbox_thread, ledger) | s3_env(aws_env)  # every command, flags or not
    source = f"s3://{bucket}/calls/"

    first = run_cli("submit", source, "--wait", env=env, cwd=tmp_path)
    assert first.returncode == ExitCode.FAILED, first.stderr
    old_job, status = job_of(ledger, bad)
    assert status == "FAILED"

    status_run = run_cli("status", "--format", "json", env=env, cwd=tmp_path)
    assert status_run.returncode == ExitCode.FAILED, status_run.stderr
    failed = json.loads(status_run.stdout)["failed"]
    assert [(f["path"], f["job_id"]) for f in failed] == [(bad, old_job)]
    assert "could not be decoded" in failed[0]["message"]

    retried = run_cli("retry-failed", "--wait", env=env, cwd=tmp_path)
    new_job, _ = job_of(ledger, bad)
    assert new_job != old_job and new_job in successful_creates(sandbox_thread)
    assert retried.returncode == ExitCode.FAILED, retried.stderr  # the same bytes fail again

    report = run_cli("report", "--path", bad, "--format", "json", env=env, cwd=tmp_path)
    assert report.returncode == ExitCode.OK, report.stderr
    (record,) = json.loads(report.stdout)["files"]
    assert record["job_id"] == new_job
    assert old_job in json.dumps(record), "the replaced job stays in the history"

    fetched = run_cli("fetch", "--out", str(tmp_path / "out"), env=env, cwd=tmp_path)
    assert fetched.returncode in (ExitCode.OK, ExitCode.FAILED), fetched.stderr
    assert [p.name for p in (tmp_path / "out").rglob("*.txt")] == ["good.wav.txt"]

    creates = len(successful_creates(sandbox_thread))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    rebuilt = run_cli("reconcile", source, env=env, cwd=tmp_path)
    assert rebuilt.returncode in (ExitCode.OK, ExitCode.FAILED), rebuilt.stderr
    assert job_of(ledger, good)[1] == "DONE"
    again = run_cli("submit", source, env=env, cwd=tmp_path)
    assert again.returncode in (ExitCode.OK, ExitCode.FAILED), again.stderr
    assert len(successful_creates(sandbox_thread)) == creates, "reconcile matched every job back"
