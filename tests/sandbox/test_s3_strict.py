"""The sandbox S3 refuses what AWS refuses, and stores exactly what it acknowledges."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from pipeline.sandbox import Sandbox
from tests.sandbox.helpers import (
    presign_get_url,
    presign_put_url,
    raw_http,
    s3_client,
    s3_error_code,
)

pytestmark = pytest.mark.anyio
OCTET = {"Content-Type": "application/octet-stream"}
BODY = bytes(range(256)) * 256  # 64 KiB


async def put(url: str, body: bytes = BODY, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http, http.put(url, data=body, headers=headers or OCTET) as resp:
        return resp.status, await resp.read(), resp.headers.get("ETag", "")


async def test_valid_put_etag_is_md5_and_get_streams_back(sandbox: Sandbox) -> None:
    client = s3_client(sandbox)
    url = presign_put_url(client, sandbox.bucket, "inputs/x/one file.wav")
    status, _, etag = await put(url)
    assert status == 200
    assert etag == f'"{hashlib.md5(BODY).hexdigest()}"'
    info = sandbox.object_info("inputs/x/one file.wav")
    assert info is not None and info.size == len(BODY) and info.md5 == hashlib.md5(BODY).hexdigest()
    async with aiohttp.ClientSession() as http:
        get_url = presign_get_url(client, sandbox.bucket, "inputs/x/one file.wav")
        async with http.get(get_url) as resp:
            assert resp.status == 200 and await resp.read() == BODY
            assert resp.headers["ETag"] == etag and resp.headers["Content-Length"] == str(len(BODY))
        async with http.head(get_url) as resp:
            assert resp.status == 403  # the method is signed: a GET URL is not a HEAD URL
        head_url = client.generate_presigned_url(
            "head_object", Params={"Bucket": sandbox.bucket, "Key": "inputs/x/one file.wav"}, ExpiresIn=60
        )
        async with http.head(head_url) as resp:
            assert resp.status == 200 and resp.headers["ETag"] == etag
    assert sandbox.read_object("inputs/x/one file.wav") == BODY
    listed = {o.key: o for o in sandbox.objects().objects}
    assert listed["inputs/x/one file.wav"].md5 == hashlib.md5(BODY).hexdigest()


async def test_large_body_streams(sandbox: Sandbox) -> None:
    body = b"\x01\x02" * (3 * 1024 * 1024)
    status, _, etag = await put(presign_put_url(s3_client(sandbox), sandbox.bucket, "big.bin"), body)
    assert status == 200 and etag == f'"{hashlib.md5(body).hexdigest()}"'


async def test_tampered_signature_and_wrong_secret(sandbox: Sandbox) -> None:
    url = presign_put_url(s3_client(sandbox), sandbox.bucket, "k1")
    flipped = url[:-1] + ("0" if url[-1] != "0" else "1")
    status, body, _ = await put(flipped)
    assert status == 403 and s3_error_code(body)[0] == "SignatureDoesNotMatch"
    status, body, _ = await put(presign_put_url(s3_client(sandbox, secret="wrong"), sandbox.bucket, "k1"))
    assert status == 403 and s3_error_code(body)[0] == "SignatureDoesNotMatch"
    status, body, _ = await put(presign_put_url(s3_client(sandbox, access="nobody"), sandbox.bucket, "k1"))
    assert status == 403 and s3_error_code(body)[0] == "InvalidAccessKeyId"
    assert sandbox.object_info("k1") is None


async def test_signed_content_type_must_match(sandbox: Sandbox) -> None:
    url = presign_put_url(s3_client(sandbox), sandbox.bucket, "k2", content_type="audio/wav")
    status, body, _ = await put(url, headers={"Content-Type": "application/octet-stream"})
    assert status == 403 and s3_error_code(body)[0] == "SignatureDoesNotMatch"
    status, _, _ = await put(url, headers={"Content-Type": "audio/wav"})
    assert status == 200


async def test_other_key_or_method_does_not_verify(sandbox: Sandbox) -> None:
    client = s3_client(sandbox)
    url = presign_put_url(client, sandbox.bucket, "k3")
    status, body, _ = await put(url.replace("/k3?", "/k4?"))
    assert status == 403 and s3_error_code(body)[0] == "SignatureDoesNotMatch"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 403


async def test_expired_url(sandbox: Sandbox) -> None:
    url = presign_put_url(s3_client(sandbox), sandbox.bucket, "late", expires=1)
    await asyncio.sleep(1.2)
    status, body, _ = await put(url)
    assert status == 403 and s3_error_code(body) == ("AccessDenied", "Request has expired")
    assert sandbox.object_info("late") is None


async def test_unsigned_amz_header_refused_content_sha_allowed(sandbox: Sandbox) -> None:
    url = presign_put_url(s3_client(sandbox), sandbox.bucket, "meta")
    status, body, _ = await put(url, headers={**OCTET, "x-amz-meta-foo": "bar"})
    assert status == 403
    assert s3_error_code(body) == (
        "AccessDenied",
        "There were headers present in the request which were not signed",
    )
    status, _, _ = await put(url, headers={**OCTET, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    assert status == 200


async def test_missing_content_length_411(sandbox: Sandbox) -> None:
    url = presign_put_url(s3_client(sandbox), sandbox.bucket, "nolen")
    status, body = await raw_http(url, "PUT", OCTET, b"")
    assert status == 411 and s3_error_code(body)[0] == "MissingContentLength"
    assert sandbox.object_info("nolen") is None


async def test_chunked_put_501(sandbox: Sandbox) -> None:
    url = presign_put_url(s3_client(sandbox), sandbox.bucket, "chunked")

    async def stream() -> AsyncIterator[bytes]:
        yield BODY[:1000]
        yield BODY[1000:2000]

    async with aiohttp.ClientSession() as http, http.put(url, data=stream(), headers=OCTET) as resp:
        assert resp.status == 501
        assert s3_error_code(await resp.read())[0] == "NotImplemented"
    assert sandbox.object_info("chunked") is None


async def test_content_md5(sandbox: Sandbox) -> None:
    url = presign_put_url(s3_client(sandbox), sandbox.bucket, "md5")
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    status, body, _ = await put(url, headers={**OCTET, "Content-MD5": wrong})
    assert status == 400 and s3_error_code(body)[0] == "BadDigest"
    assert sandbox.object_info("md5") is None
    status, body, _ = await put(url, headers={**OCTET, "Content-MD5": "not-base64!"})
    assert status == 400 and s3_error_code(body)[0] == "InvalidDigest"
    right = base64.b64encode(hashlib.md5(BODY).digest()).decode()
    status, _, _ = await put(url, headers={**OCTET, "Content-MD5": right})
    assert status == 200


async def test_truncated_body_is_discarded(sandbox: Sandbox) -> None:
    url = presign_put_url(s3_client(sandbox), sandbox.bucket, "short")
    status, _ = await raw_http(url, "PUT", {**OCTET, "Content-Length": "1000"}, b"x" * 400, half_close=True)
    assert status in (None, 400)
    await asyncio.sleep(0.05)
    assert sandbox.object_info("short") is None
    assert all(o.key != "short" for o in sandbox.objects().objects)


async def test_wrong_host_is_refused(sandbox: Sandbox) -> None:
    url = presign_put_url(s3_client(sandbox), sandbox.bucket, "host")
    port = url.split("/")[2].split(":")[1]
    status, body = await raw_http(
        url, "PUT", {**OCTET, "Content-Length": str(len(BODY))}, BODY, host=f"localhost:{port}"
    )
    assert status == 403 and s3_error_code(body)[0] == "SignatureDoesNotMatch"
    status, _ = await raw_http(url, "PUT", {**OCTET, "Content-Length": str(len(BODY))}, BODY)
    assert status == 200


async def test_unknown_bucket_missing_key_and_unsigned(sandbox: Sandbox) -> None:
    client = s3_client(sandbox)
    status, body, _ = await put(presign_put_url(client, "no-such-bucket", "k"))
    assert status == 404 and s3_error_code(body)[0] == "NoSuchBucket"
    sandbox.create_bucket("no-such-bucket")
    status, _, _ = await put(presign_put_url(client, "no-such-bucket", "k"))
    assert status == 200
    async with aiohttp.ClientSession() as http:
        async with http.get(presign_get_url(client, sandbox.bucket, "missing")) as resp:
            assert resp.status == 404 and s3_error_code(await resp.read())[0] == "NoSuchKey"
        async with http.put(f"{sandbox.s3_url}/{sandbox.bucket}/anon", data=b"x") as resp:
            assert resp.status == 403 and s3_error_code(await resp.read())[0] == "AccessDenied"
        url = presign_put_url(client, sandbox.bucket, "twoauth")
        async with http.put(url, data=b"x", headers={**OCTET, "Authorization": "Bearer sk"}) as resp:
            assert resp.status == 400 and s3_error_code(await resp.read())[0] == "InvalidArgument"
    assert sandbox.object_info("twoauth") is None
