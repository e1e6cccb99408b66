"""External mode: the API presigns for, checks and writes to another S3 (LocalStack here)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from pipeline.api.models import JobFiles
from pipeline.sandbox import Sandbox, SandboxConfig
from tests.sandbox.helpers import JOBS, auth, body_as, presign, presigned_job, wait_terminal, wav_bytes
from tests.support.localstack import LocalStackS3, localstack_s3  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.localstack, pytest.mark.timeout(120)]


@pytest.fixture
async def external(localstack_s3: LocalStackS3) -> AsyncIterator[Sandbox]:  # noqa: F811
    cfg = SandboxConfig(
        job_step_seconds=0,
        s3_endpoint=localstack_s3.endpoint,
        s3_access_key=localstack_s3.access_key,
        s3_secret_key=localstack_s3.secret_key,
        s3_bucket=localstack_s3.create_bucket("slng-ext"),
        s3_region=localstack_s3.region,
    )
    async with Sandbox(cfg).run() as sb:
        yield sb


@pytest.mark.slow
async def test_full_presign_flow_against_external_s3(external: Sandbox) -> None:
    audio = wav_bytes(1.0)
    async with aiohttp.ClientSession() as http:
        job_id = await presigned_job(http, external, audio)
        job = await wait_terminal(http, external, job_id)
        assert job.status == "DONE"
        assert job.input_metadata is not None and job.input_metadata["size_bytes"] == len(audio)
        async with http.get(f"{external.api_url}{JOBS}/{job_id}/files", headers=auth(external)) as resp:
            files = await body_as(resp, JobFiles)
        assert files.inputs[0].download_url.startswith(external.s3_url)
        async with http.get(files.inputs[0].download_url) as resp:
            assert resp.status == 200 and await resp.read() == audio
        async with http.get(files.outputs[0].download_url) as resp:
            assert resp.status == 200 and b'"results"' in await resp.read()
    keys = {o.key for o in external.objects().objects}
    assert f"inputs/{job_id}/a.wav" in keys and f"outputs/{job_id}/transcript.srt" in keys


async def test_step3_without_upload_is_400_on_external_s3(external: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        target = await presign(http, external, job_id="extmissing")
        resp = await http.post(
            external.api_url + JOBS,
            headers=auth(external),
            json={"s3_key": target.upload.s3_key, "job_id": "extmissing", "transcription_config": {}},
        )
        assert resp.status == 400
