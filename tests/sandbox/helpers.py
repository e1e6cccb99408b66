"""Small helpers shared by the sandbox tests: audio bytes, auth headers, typed API calls."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any, TypeVar
from urllib.parse import urlsplit
from xml.etree import ElementTree

import aiohttp
import botocore.session
from botocore.config import Config
from pydantic import BaseModel

from pipeline.api.models import BatchJob, ErrorBody, JobAcknowledgement, PresignResponse
from pipeline.sandbox import Sandbox

M = TypeVar("M", bound=BaseModel)
JOBS = "/v1/batch/jobs"
CONFIG: dict[str, Any] = {"language": "en"}


def wav_bytes(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A valid 16-bit mono PCM WAV of the given duration (silence)."""
    data = b"\0\0" * int(seconds * rate)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def auth(sb: Sandbox, key: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key or sb.api_key}"}


async def body_as(resp: aiohttp.ClientResponse, model: type[M]) -> M:
    """The response body, asserted to validate against a `pipeline.api.models` type."""
    return model.model_validate(await resp.json())


async def expect_error(resp: aiohttp.ClientResponse, status: int, message: str | None = None) -> str:
    assert resp.status == status, await resp.text()
    body = await body_as(resp, ErrorBody)
    assert set((await resp.json()).keys()) == {"error"}
    if message is not None:
        assert body.error == message, body.error
    return body.error


async def presign(
    http: aiohttp.ClientSession, sb: Sandbox, filename: str = "a.wav", **extra: Any
) -> PresignResponse:
    payload = {"mode": "presign", "filename": filename, "transcription_config": CONFIG, **extra}
    async with http.post(sb.api_url + JOBS, json=payload, headers=auth(sb)) as resp:
        assert resp.status == 200, await resp.text()
        return await body_as(resp, PresignResponse)


async def put_upload(
    http: aiohttp.ClientSession, target: PresignResponse, data: bytes
) -> aiohttp.ClientResponse:
    headers = dict(target.upload.headers or {})
    resp = await http.put(target.upload.url, data=data, headers=headers)
    await resp.read()
    return resp


async def create_from_upload(
    http: aiohttp.ClientSession, sb: Sandbox, s3_key: str, job_id: str | None, **extra: Any
) -> aiohttp.ClientResponse:
    payload: dict[str, Any] = {"s3_key": s3_key, "transcription_config": CONFIG, **extra}
    if job_id is not None:
        payload["job_id"] = job_id
    resp = await http.post(sb.api_url + JOBS, json=payload, headers=auth(sb))
    await resp.read()
    return resp


async def presigned_job(
    http: aiohttp.ClientSession, sb: Sandbox, data: bytes | None = None, filename: str = "a.wav", **extra: Any
) -> str:
    """Run the three presign steps; return the job_id."""
    target = await presign(http, sb, filename, **extra)
    put = await put_upload(http, target, wav_bytes(0.5) if data is None else data)
    assert put.status == 200
    resp = await create_from_upload(http, sb, target.upload.s3_key, target.job_id)
    assert resp.status == 202, await resp.text()
    ack = JobAcknowledgement.model_validate(await resp.json())
    assert ack.status == "QUEUED"
    return ack.job_id


async def upload_job(
    http: aiohttp.ClientSession, sb: Sandbox, data: bytes, filename: str = "a.wav", **fields: Any
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type="audio/wav")
    fields.setdefault("transcription_config", CONFIG)
    for name, value in fields.items():
        form.add_field(name, value if isinstance(value, str) else json.dumps(value))
    resp = await http.post(sb.api_url + JOBS, data=form, headers=auth(sb))
    await resp.read()
    return resp


async def get_job(http: aiohttp.ClientSession, sb: Sandbox, job_id: str) -> BatchJob:
    async with http.get(f"{sb.api_url}{JOBS}/{job_id}", headers=auth(sb)) as resp:
        assert resp.status == 200, await resp.text()
        return await body_as(resp, BatchJob)


async def wait_terminal(
    http: aiohttp.ClientSession, sb: Sandbox, job_id: str, limit_s: float = 5.0
) -> BatchJob:
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        job = await get_job(http, sb, job_id)
        if job.is_terminal or asyncio.get_running_loop().time() > deadline:
            return job
        await asyncio.sleep(0.03)


def s3_client(sb: Sandbox, secret: str | None = None, access: str | None = None) -> Any:
    """An independent botocore client that presigns against the sandbox S3 (no request goes through it)."""
    creds = sb.s3_credentials
    return botocore.session.Session().create_client(
        "s3",
        endpoint_url=sb.s3_url,
        aws_access_key_id=access or creds.access_key,
        aws_secret_access_key=secret or creds.secret_key,
        region_name=creds.region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def presign_put_url(
    client: Any, bucket: str, key: str, content_type: str = "application/octet-stream", expires: int = 300
) -> str:
    params = {"Bucket": bucket, "Key": key, "ContentType": content_type}
    return str(client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires))


def presign_get_url(client: Any, bucket: str, key: str, expires: int = 300) -> str:
    params = {"Bucket": bucket, "Key": key}
    return str(client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires))


async def raw_http(
    url: str,
    method: str,
    headers: dict[str, str],
    body: bytes = b"",
    host: str | None = None,
    half_close: bool = False,
) -> tuple[int | None, bytes]:
    """Send exactly these bytes (no client library fixing up headers); return (status, body)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [
        f"{method} {parts.path}?{parts.query} HTTP/1.1",
        f"Host: {host or parts.netloc}",
        "Connection: close",
    ]
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    if half_close:
        writer.write_eof()
    try:
        data = await asyncio.wait_for(reader.read(), 10)
    except (ConnectionError, TimeoutError):
        data = b""
    finally:
        writer.close()
    if not data.startswith(b"HTTP/1.1 "):
        return None, data
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def s3_error_code(body: bytes) -> tuple[str, str]:
    """(Code, Message) of an S3 XML error body."""
    root = ElementTree.fromstring(body)
    assert root.tag == "Error"
    return root.findtext("Code") or "", root.findtext("Message") or ""
