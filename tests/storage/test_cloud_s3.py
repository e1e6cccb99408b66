"""S3 listing and signing against LocalStack (which verifies SigV4 signatures and expiry), and the
sandbox creating a job from such a signed URL end to end."""

from __future__ import annotations

import aiohttp
import obstore
import pytest

from pipeline.errors import ConfigError
from pipeline.sandbox import Sandbox, SandboxConfig
from tests.sandbox.helpers import CONFIG, JOBS, auth, wait_terminal, wav_bytes
from tests.storage.cloud_helpers import (
    body_for,
    fetch,
    fetch_after_expiry,
    fill,
    list_lazily,
)
from tests.support.cloud_env import bucket_at, no_ambient_credentials, s3_store
from tests.support.counting_proxy import counting_proxy
from tests.support.localstack import LocalStackS3

pytestmark = [pytest.mark.anyio, pytest.mark.localstack]
OBJECTS = 2100  # S3 pages hold 1 000 keys: three pages


async def test_listing_is_lazy_and_paged(aws_env: LocalStackS3) -> None:
    name = aws_env.create_bucket()
    keys = [f"calls/{i:05d}.wav" for i in range(OBJECTS)]
    await fill(s3_store(aws_env, name), [*keys, "other/x.wav"])
    async with counting_proxy(aws_env.endpoint) as proxy:
        first, seen = await list_lazily(bucket_at(proxy.url, f"s3://{name}/calls/"), proxy, "list-type=2")
    assert seen == keys
    assert proxy.count("list-type=2") == 3
    assert proxy.count("continuation-token=") == 2
    item = first[0]
    assert item.url == f"s3://{name}/{item.key}" and "?" not in item.url
    assert item.size == len(body_for(item.key)) and item.etag and item.last_modified.tzinfo


async def test_signed_get_fetches_the_exact_bytes(aws_env: LocalStackS3) -> None:
    name = aws_env.create_bucket()
    key = "calls/a b+c;d'e.wav"  # characters a client would normalise
    await fill(s3_store(aws_env, name), [key])
    bucket = bucket_at(aws_env.endpoint, f"s3://{name}/calls/")
    url = await bucket.sign_get(key)
    assert "X-Amz-Expires=21600" in url  # the default: 6 h
    assert await fetch(url) == (200, body_for(key))


async def test_an_expired_signature_is_refused(aws_env: LocalStackS3) -> None:
    name = aws_env.create_bucket()
    await fill(s3_store(aws_env, name), ["a.wav"])
    status, body = await fetch_after_expiry(bucket_at(aws_env.endpoint, f"s3://{name}/"), "a.wav")
    assert status == 403 and b"expired" in body.lower()


async def test_a_refused_listing_is_one_clear_line(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """LocalStack does not check header signatures, so the refusal comes from the sandbox's strict S3,
    which refuses every request it cannot verify (403), as AWS does a wrong secret."""
    no_ambient_credentials(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(ConfigError) as info:
        async for _ in bucket_at(sandbox.s3_url, f"s3://{sandbox.bucket}/calls/").objects():
            pass
    text = str(info.value)
    prefix = f"s3://{sandbox.bucket}/calls/: cloud storage refused the credentials while listing (HTTP 403"
    assert text.startswith(prefix), text
    assert "\n" not in text and "not-the-secret" not in text and "AKIAWRONG" not in text


async def test_missing_credentials_are_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    no_ambient_credentials(monkeypatch)
    bucket = bucket_at("http://127.0.0.1:9", "s3://anything/")
    with pytest.raises(ConfigError, match=r"^no AWS credentials found"):
        await anext(bucket.objects())


async def test_the_sandbox_creates_a_job_from_a_signed_url(aws_env: LocalStackS3) -> None:
    name = aws_env.create_bucket()
    key = "archive/2026/call 8812.wav"
    audio = wav_bytes(0.5)
    await obstore.put_async(s3_store(aws_env, name), key, audio)
    bucket = bucket_at(aws_env.endpoint, f"s3://{name}/archive/")
    listed = [o async for o in bucket.objects()]
    assert [o.key for o in listed] == [key]
    async with (
        Sandbox(SandboxConfig(job_step_seconds=0.02)).run() as sb,
        aiohttp.ClientSession() as http,
    ):
        payload = {
            "input_url": await bucket.sign_get(key),
            "transcription_config": CONFIG,
            "job_id": "cloud1",
        }
        async with http.post(sb.api_url + JOBS, json=payload, headers=auth(sb)) as resp:
            assert resp.status == 202, await resp.text()
        job = await wait_terminal(http, sb, "cloud1", limit_s=20)
        assert job.status == "DONE", job.error_message
        assert job.input_metadata is not None and job.input_metadata["size_bytes"] == listed[0].size
        async with http.get(f"{sb.api_url}{JOBS}/cloud1/files", headers=auth(sb)) as resp:
            files = await resp.json()
        assert await fetch(files["inputs"][0]["download_url"]) == (200, audio)
