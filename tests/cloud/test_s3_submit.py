"""Audio already in S3 (LocalStack), submitted by URL against the sandbox: the sandbox downloads each
signed URL itself, so a job that reaches DONE proves the signature, the key and the bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import submit
from pipeline.sandbox import Sandbox
from tests.cloud.helpers import cloud_settings, put_audio
from tests.support.localstack import LocalStackS3
from tests.support.runs import created_job_ids, successful_creates

pytestmark = [pytest.mark.anyio, pytest.mark.localstack]


async def test_a_prefix_is_one_job_per_audio_object_and_no_byte_is_uploaded(
    aws_env: LocalStackS3, sandbox: Sandbox, tmp_path: Path
) -> None:
    bucket = aws_env.create_bucket()
    put_audio(aws_env, bucket, ["calls/a.wav", "calls/sub/b.mp3", "calls/notes.txt", "other/c.wav"])
    settings = cloud_settings(sandbox, aws_env, tmp_path / "l.db")
    stats = await submit([f"s3://{bucket}/calls/"], settings)
    assert stats.created == 2 and stats.failed == 0, stats
    assert stats.presigns == 0 and stats.bytes_sent == 0
    jobs = {job.job_id: job for job in sandbox.jobs().jobs}
    assert len(jobs) == 2
    again = await submit([f"s3://{bucket}/calls/"], settings)
    assert again.created == 0 and again.skipped_done == 2
    assert len(created_job_ids(sandbox)) == 2 and len(successful_creates(sandbox)) == 2
