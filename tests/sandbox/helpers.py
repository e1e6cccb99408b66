"""Small helpers shared by the sandbox tests: audio bytes, auth headers, typed API calls."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel

from pipeline.models import BatchJob, ErrorBody, JobAcknowledgement, PresignResponse
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
    """The response body, asserted to validate against a `pipeline.models` type."""
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
