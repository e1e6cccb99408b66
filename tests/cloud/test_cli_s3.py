"""`slng-bulk submit --sandbox s3://…` end to end: LocalStack holds the audio, the in-process
sandbox downloads each signed GET URL itself (so a DONE job proves the signature, key and bytes),
and the ledger beside keeps every object exactly once."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.sandbox import FaultPlan, Sandbox
from tests.cloud.helpers import put_audio, s3_flags, sandbox_submit
from tests.flow.test_resume import kill_when
from tests.support.cloud_env import no_ambient_credentials
from tests.support.localstack import LocalStackS3
from tests.support.runs import cli_env, run_cli, start_cli, successful_creates

pytestmark = pytest.mark.localstack


def ledger_rows(ledger: Path) -> list[tuple[str, str, str, str | None]]:
    with sqlite3.connect(ledger) as conn:
        return conn.execute("SELECT path, state, job_id, object_version FROM files ORDER BY path").fetchall()


def submit(tmp_path: Path, server: LocalStackS3, *args: str) -> tuple[int, str]:
    result = sandbox_submit(tmp_path, *s3_flags(server), *args)
    return result.returncode, result.stderr


def test_a_prefix_waits_and_writes_each_objects_transcripts(aws_env: LocalStackS3, tmp_path: Path) -> None:
    bucket = aws_env.create_bucket()
    put_audio(aws_env, bucket, ["calls/a.wav", "calls/2026/b.wav", "calls/notes.txt", "other/c.wav"])
    code, err = submit(tmp_path, aws_env, f"s3://{bucket}/calls/", "--wait", "--out", str(tmp_path / "out"))
    assert code == ExitCode.OK, err
    rows = ledger_rows(tmp_path / "l.db")
    assert [r[0] for r in rows] == [f"s3://{bucket}/calls/2026/b.wav", f"s3://{bucket}/calls/a.wav"]
    assert all(state == "created" and version for _p, state, _j, version in rows)
    assert (tmp_path / "out" / "a.txt").is_file() or any((tmp_path / "out").rglob("a*.txt")), list(
        (tmp_path / "out").rglob("*")
    )
    assert any((tmp_path / "out").rglob("b*.json"))
    with sqlite3.connect(tmp_path / "l.db") as conn:
        stored = " ".join(str(v) for row in conn.execute("SELECT * FROM files") for v in row)
    assert "X-Amz-Signature" not in stored and "?" not in stored  # no URL signature, no query kept
    again, err = submit(tmp_path, aws_env, f"s3://{bucket}/calls/")
    assert again == ExitCode.OK, err
    assert ledger_rows(tmp_path / "l.db") == rows  # nothing new: one job per object


def test_a_changed_object_is_a_new_job(aws_env: LocalStackS3, tmp_path: Path) -> None:
    bucket = aws_env.create_bucket()
    put_audio(aws_env, bucket, ["calls/a.wav"], seconds=0.2)
    assert submit(tmp_path, aws_env, f"s3://{bucket}/calls/")[0] == ExitCode.OK
    put_audio(aws_env, bucket, ["calls/a.wav"], seconds=0.3)  # new bytes: a new ETag
    assert submit(tmp_path, aws_env, f"s3://{bucket}/calls/")[0] == ExitCode.OK
    rows = ledger_rows(tmp_path / "l.db")
    assert len(rows) == 2 and rows[0][2] != rows[1][2] and rows[0][3] != rows[1][3]


def test_settle_leaves_a_fresh_object_for_a_later_run(aws_env: LocalStackS3, tmp_path: Path) -> None:
    """A bucket that an uploader is still filling, read from cron: an object modified within
    --settle seconds (its LastModified) is left for a later run, counted, and no job is made."""
    bucket = aws_env.create_bucket()
    put_audio(aws_env, bucket, ["calls/a.wav"])
    summary = tmp_path / "summary.json"
    code, err = submit(
        tmp_path, aws_env, f"s3://{bucket}/calls/", "--settle", "3600", "--summary-json", str(summary)
    )
    assert code == ExitCode.OK, err
    assert json.loads(summary.read_text())["counts"]["skipped_unsettled"] == 1
    assert ledger_rows(tmp_path / "l.db") == []
    code, err = submit(tmp_path, aws_env, f"s3://{bucket}/calls/", "--settle", "0")
    assert code == ExitCode.OK, err
    assert [state for _p, state, _j, _v in ledger_rows(tmp_path / "l.db")] == ["created"]


def test_missing_credentials_are_one_line_exit_8_and_no_job(
    aws_env: LocalStackS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = aws_env.create_bucket()
    put_audio(aws_env, bucket, ["calls/a.wav"])
    (tmp_path / "local.wav").write_bytes(put_audio(aws_env, bucket, ["calls/b.wav"])["calls/b.wav"])
    no_ambient_credentials(monkeypatch)
    code, err = submit(tmp_path, aws_env, str(tmp_path / "local.wav"), f"s3://{bucket}/calls/")
    assert code == ExitCode.CONFIG, err
    lines = [line for line in err.splitlines() if line.strip() and "sandbox running" not in line]
    assert len(lines) == 1 and "no AWS credentials found" in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "l.db").exists() or ledger_rows(tmp_path / "l.db") == []


def test_a_manifest_of_url_rows_mixed_with_local_files(aws_env: LocalStackS3, tmp_path: Path) -> None:
    bucket = aws_env.create_bucket()
    bodies = put_audio(aws_env, bucket, ["in/a.wav", "in/b.wav"])
    (tmp_path / "local.wav").write_bytes(bodies["in/a.wav"])
    (tmp_path / "m.csv").write_text(
        f"path,url,language\n,s3://{bucket}/in/a.wav,en\n,s3://{bucket}/in/missing.wav,en\nlocal.wav,,fr\n"
    )
    (tmp_path / "m.jsonl").write_text(f'{{"url": "s3://{bucket}/in/b.wav", "job_id": "fromjsonl1"}}\n')
    code, err = submit(tmp_path, aws_env, str(tmp_path / "m.csv"), str(tmp_path / "m.jsonl"), "--wait")
    assert code == ExitCode.REJECTED, err  # the missing object is one rejected row, named
    assert f"m.csv:3: s3://{bucket}/in/missing.wav: object not found" in err
    rows = ledger_rows(tmp_path / "l.db")
    assert sorted(r[0] for r in rows) == sorted(
        [f"s3://{bucket}/in/a.wav", f"s3://{bucket}/in/b.wav", str(tmp_path / "local.wav")]
    )
    assert all(r[1] == "created" for r in rows) and "fromjsonl1" in {r[2] for r in rows}


def test_sigkill_mid_run_then_rerun_leaves_one_job_per_object(
    aws_env: LocalStackS3, sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    bucket = aws_env.create_bucket()
    keys = [f"calls/{i:03d}.wav" for i in range(40)]
    put_audio(aws_env, bucket, keys, seconds=0.05)
    sandbox_thread.set_faults(
        FaultPlan.model_validate({"seed": 3, "operations": {"create": {"latency": {"fixed_ms": 20}}}})
    )
    ledger = tmp_path / "l.db"
    env = cli_env(sandbox_thread, ledger)
    args = ["submit", f"s3://{bucket}/calls/", "--concurrency", "4", *s3_flags(aws_env)]
    killed = kill_when(sandbox_thread, start_cli(args, env, tmp_path), "create", 10)
    assert killed, "the run ended before the kill"
    final = run_cli(*args, env=env, cwd=tmp_path)
    assert final.returncode == ExitCode.OK, final.stderr
    creates = successful_creates(sandbox_thread)
    assert len(creates) == len(set(creates)) == len(keys)
    assert len(ledger_rows(ledger)) == len(keys)
