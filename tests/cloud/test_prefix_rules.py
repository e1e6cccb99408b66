"""A bucket prefix follows a folder's rules (--include, --exclude, --shard), and its dry run says
what is new or done in the ledger and downloads nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.cloud.helpers import put_audio, s3_flags, sandbox_submit
from tests.support.localstack import LocalStackS3

pytestmark = pytest.mark.localstack

KEYS = ["calls/2026-01/a.wav", "calls/2026-01/skip-b.wav", "calls/2026-02/c.wav", "calls/2025-12/d.wav"]


def cli(tmp_path: Path, server: LocalStackS3, ledger: str, *args: str) -> tuple[int, str, str]:
    result = sandbox_submit(tmp_path, *s3_flags(server), *args, ledger=ledger)
    return result.returncode, result.stdout, result.stderr


def paths(ledger: Path) -> list[str]:
    with sqlite3.connect(ledger) as conn:
        return [row[0] for row in conn.execute("SELECT path FROM files ORDER BY path")]


def test_include_exclude_and_shard_pick_objects_as_they_pick_files(
    aws_env: LocalStackS3, tmp_path: Path
) -> None:
    bucket = aws_env.create_bucket()
    put_audio(aws_env, bucket, KEYS)
    prefix = f"s3://{bucket}/calls/"
    rules = ("--include", "2026-*/**", "--exclude", "**/skip-*")
    code, _out, err = cli(tmp_path, aws_env, "l.db", prefix, *rules)
    assert code == ExitCode.OK, err
    assert paths(tmp_path / "l.db") == [f"{prefix}2026-01/a.wav", f"{prefix}2026-02/c.wav"]

    sharded = []
    for shard in ("1/2", "2/2"):
        code, _out, err = cli(tmp_path, aws_env, f"s{shard[0]}.db", prefix, "--shard", shard)
        assert code == ExitCode.OK, err
        sharded.append(paths(tmp_path / f"s{shard[0]}.db"))
    assert sorted(sharded[0] + sharded[1]) == sorted(f"s3://{bucket}/{key}" for key in KEYS)
    assert not set(sharded[0]) & set(sharded[1])  # every object in exactly one shard


def test_a_dry_run_of_a_bucket_says_what_is_new_and_done_and_sends_nothing(
    aws_env: LocalStackS3, tmp_path: Path
) -> None:
    bucket = aws_env.create_bucket()
    put_audio(aws_env, bucket, KEYS[:2])
    prefix = f"s3://{bucket}/calls/"
    assert cli(tmp_path, aws_env, "l.db", prefix)[0] == ExitCode.OK
    put_audio(aws_env, bucket, KEYS[2:])

    code, out, err = cli(tmp_path, aws_env, "l.db", prefix, "--dry-run", "-v")
    assert code == ExitCode.OK, err
    text = out + err
    assert "2 new" in text and "2 done" in text, text
    assert "would send 2 files" in text, text
    for key in KEYS[2:]:
        assert any(line.startswith("new") and key in line for line in text.splitlines()), text
    assert len(paths(tmp_path / "l.db")) == 2  # the dry run recorded nothing
