"""Audio already in S3 (LocalStack), submitted by URL against the sandbox: the sandbox downloads each
signed URL itself, so a job that reaches DONE proves the signature, the key and the bytes."""

from __future__ import annotations

from pathlib import Path

import obstore
import pytest

from pipeline import submit
from pipeline.sandbox import Sandbox
from tests.cloud.s3_helpers import cloud_settings
from tests.sandbox.helpers import wav_bytes
from tests.storage.cloud_helpers import no_ambient_credentials
from tests.storage.test_cloud_s3 import raw_store
from tests.support.localstack import LocalStackS3, localstack_s3  # noqa: F401
from tests.support.runs import created_job_ids, successful_creates

pytestmark = [pytest.mark.anyio, pytest.mark.localstack]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, localstack_s3: LocalStackS3) -> LocalStackS3:  # noqa: F811
    no_ambient_credentials(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", localstack_s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", localstack_s3.secret_key)
    return localstack_s3


async def put_audio(server: LocalStackS3, bucket: str, keys: list[str], seconds: float = 0.2) -> None:
    store = raw_store(server, bucket)
    for key in keys:
        await obstore.put_async(store, key, wav_bytes(seconds))


async def test_a_prefix_is_one_job_per_audio_object_and_no_byte_is_uploaded(
    aws_env: LocalStackS3, sandbox: Sandbox, tmp_path: Path
) -> None:
    bucket = aws_env.create_bucket()
    await put_audio(aws_env, bucket, ["calls/a.wav", "calls/sub/b.mp3", "calls/notes.txt", "other/c.wav"])
    settings = cloud_settings(sandbox, aws_env, tmp_path / "l.db")
    stats = await submit([f"s3://{bucket}/calls/"], settings)
    assert stats.created == 2 and stats.failed == 0, stats
    assert stats.presigns == 0 and stats.bytes_sent == 0
    jobs = {job.job_id: job for job in sandbox.jobs().jobs}
    assert len(jobs) == 2
    again = await submit([f"s3://{bucket}/calls/"], settings)
    assert again.created == 0 and again.skipped_done == 2
    assert len(created_job_ids(sandbox)) == 2 and len(successful_creates(sandbox)) == 2
