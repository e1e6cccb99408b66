"""A bucket shared out over a fleet: `enqueue s3://…` into a PostgreSQL ledger, two `work`
processes sign and create one job per object (none twice, none missed), a second `work` finds
nothing to do, and `status` shows the fleet's table, by host."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ledger.postgres import PostgresLedger
from pipeline.sandbox import FaultPlan, Sandbox
from tests.cloud.helpers import put_audio, s3_env
from tests.support.localstack import LocalStackS3
from tests.support.runs import cli_env, run_cli, start_cli, successful_creates

pytestmark = pytest.mark.localstack
OBJECTS = 30


def test_enqueue_a_bucket_then_two_workers_create_one_job_per_object(
    aws_env: LocalStackS3, sandbox_thread: Sandbox, postgres_url: str, tmp_path: Path
) -> None:
    bucket = aws_env.create_bucket()
    keys = [f"calls/{i:03d}.wav" for i in range(OBJECTS)]
    put_audio(aws_env, bucket, [*keys, "calls/notes.txt"], seconds=0.05)
    sandbox_thread.set_faults(  # slow creates, so that both workers take a share
        FaultPlan.model_validate({"seed": 1, "operations": {"create": {"latency": {"fixed_ms": 30}}}})
    )
    env = cli_env(sandbox_thread, postgres_url) | s3_env(aws_env)
    loaded = run_cli("enqueue", f"s3://{bucket}/calls/", env=env, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert f"{OBJECTS} files enqueued" in loaded.stderr

    workers = [
        start_cli(["work", "--concurrency", "4", "--host-name", f"host{i}"], env, tmp_path) for i in range(2)
    ]
    for proc in workers:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    creates = successful_creates(sandbox_thread)
    assert len(creates) == len(set(creates)) == OBJECTS
    assert "FAILED" not in {job.status for job in sandbox_thread.jobs().jobs}
    ledger = PostgresLedger(postgres_url)
    assert ledger.count_by_state() == {"created": OBJECTS}
    records = list(ledger.records())
    assert sorted(r.path for r in records) == sorted(f"s3://{bucket}/{k}" for k in keys)
    assert all(r.object_version for r in records)

    rerun = run_cli("work", "--host-name", "host9", env=env, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert len(successful_creates(sandbox_thread)) == OBJECTS, "a second work creates nothing"

    status = run_cli("status", env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    fleet = {line.split()[0]: line.split() for line in status.stdout.splitlines() if line.startswith("host")}
    assert {"host0", "host1"} <= set(fleet), status.stdout
    assert sum(int(fleet[h][3]) for h in fleet if h != "host") == OBJECTS, status.stdout
