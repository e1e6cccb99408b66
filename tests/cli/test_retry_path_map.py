"""`retry-failed --path-map`: a host that sees the audio elsewhere than where the ledger recorded it.

The files are submitted from `nas/`, then the folder moves to `mirror/` (same bytes, same mtimes), as
on a host that mounts the share elsewhere. Without the map the failed file is not found and keeps its
failed job; with it, the file is read from `mirror/` and resubmitted under its recorded identity:
the stored path, the file key and the next generation's job id are the ones the ledger already had.
Run on both backends by the same code.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.ledger import FileRecord, open_ledger, sqlite_path
from pipeline.sandbox import Sandbox
from pipeline.sources.identity import derive_job_id
from tests.support.audio import tree_with_a_broken_file
from tests.support.runs import cli_env, md5_of, objects_by_key, run_cli


def records(target: str) -> dict[str, FileRecord]:
    return {record.path: record for record in open_ledger(target).records()}


def wait_for_statuses(target: str, env: dict[str, str], cwd: Path) -> None:
    """`status` until no job is open (the sandbox's jobs finish within a second)."""
    deadline = time.monotonic() + 30
    while any(r.job_status not in ("DONE", "FAILED") for r in records(target).values()):
        assert time.monotonic() < deadline, "the sandbox's jobs did not finish"
        run_cli("status", env=env, cwd=cwd)
        time.sleep(0.2)


@pytest.mark.slow
def test_retry_failed_reads_files_where_this_host_sees_them_and_keeps_their_identity(
    sandbox_thread: Sandbox, ledger_target: str, tmp_path: Path
) -> None:
    bad = tree_with_a_broken_file(tmp_path / "nas", good=2)
    env = cli_env(sandbox_thread, ledger_target)
    submitted = run_cli("submit", str(tmp_path / "nas"), env=env, cwd=tmp_path)
    assert submitted.returncode == ExitCode.OK, submitted.stderr
    wait_for_statuses(ledger_target, env, tmp_path)
    before = records(ledger_target)
    failed = before[str(bad)]
    assert failed.job_status == "FAILED"
    (tmp_path / "nas").rename(tmp_path / "mirror")  # another mount point: same bytes, same mtimes
    moved = tmp_path / "mirror" / "broken.wav"

    unmapped = run_cli("retry-failed", env=env, cwd=tmp_path)
    assert unmapped.returncode == ExitCode.REJECTED, unmapped.stderr
    assert f"{bad}: file is gone" in unmapped.stderr and "--path-map" in unmapped.stderr
    assert records(ledger_target)[str(bad)] == failed  # not renewed: it keeps its failed job

    rule = f"{tmp_path / 'nas'}={tmp_path / 'mirror'}"
    mapped = run_cli("retry-failed", "--path-map", rule, "--host-name", "mirror-host", env=env, cwd=tmp_path)
    assert mapped.returncode == ExitCode.OK, mapped.stderr

    after = records(ledger_target)
    assert sorted(after) == sorted(before), "the recorded paths stay the files' identity"
    retried = after[str(bad)]
    assert (retried.id, retried.file_key, retried.path) == (failed.id, failed.file_key, failed.path)
    assert retried.generation == 1 and retried.job_id == derive_job_id(failed.file_key, 1)
    assert retried.state == "created" and retried.md5 == md5_of(moved)
    assert retried.job_id in {job.job_id for job in sandbox_thread.jobs().jobs}
    assert retried.s3_key is not None and objects_by_key(sandbox_thread)[retried.s3_key] == md5_of(moved)
    assert {p: r for p, r in after.items() if p != str(bad)} == {
        p: r for p, r in before.items() if p != str(bad)
    }

    history = run_cli("report", "--path", str(bad), "--format", "json", env=env, cwd=tmp_path)
    assert failed.job_id in history.stdout and retried.job_id in history.stdout, history.stderr
    if sqlite_path(ledger_target) is None:  # the shared ledger's fleet view names the host that did it
        from pipeline.ledger.leases import fleet_progress
        from pipeline.ledger.postgres import PostgresLedger

        by_host = {p.host: p for p in fleet_progress(PostgresLedger(ledger_target))}
        assert by_host["mirror-host"].done == 1
