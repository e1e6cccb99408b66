"""POST /v1/batch/jobs: the four create shapes, every documented error, and the silent-case choices."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from pipeline.api.models import JobAcknowledgement, PresignResponse
from pipeline.sandbox import Sandbox, SandboxConfig
from tests.sandbox.helpers import (
    CONFIG,
    JOBS,
    auth,
    body_as,
    create_from_upload,
    expect_error,
    get_job,
    presign,
    presigned_job,
    put_upload,
    upload_job,
    wav_bytes,
)

pytestmark = pytest.mark.anyio


async def post_json(http: aiohttp.ClientSession, sb: Sandbox, payload: Any, key: str | None = None) -> Any:
    return await http.post(sb.api_url + JOBS, json=payload, headers=auth(sb, key))


# --- mode A: multipart -----------------------------------------------------------------------------


async def test_multipart_upload_stores_input_and_queues(sandbox: Sandbox) -> None:
    data = wav_bytes(1.5)
    async with aiohttp.ClientSession() as http:
        resp = await upload_job(
            http,
            sandbox,
            data,
            "talk.wav",
            job_id="talk1",
            metadata={"team": "platform"},
            tracking={"title": "T"},
        )
        assert resp.status == 202
        assert await body_as(resp, JobAcknowledgement) == JobAcknowledgement(job_id="talk1", status="QUEUED")
        info = sandbox.object_info("inputs/talk1/talk.wav")
        assert info is not None and info.size == len(data)
        job = await get_job(http, sandbox, "talk1")
        assert job.input_metadata == {
            "source": "upload",
            "filename": "talk.wav",
            "size_bytes": len(data),
            "format": "wav",
            "mime_type": "audio/wav",
            "duration_seconds": 1.5,
        }
        assert job.job_config is not None and job.job_config["tracking"] == {"title": "T"}


async def test_multipart_generates_job_id(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await upload_job(http, sandbox, wav_bytes(0.1))
        ack = await body_as(resp, JobAcknowledgement)
        assert re.fullmatch(r"job[0-9a-f]{32}", ack.job_id)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"transcription_config": "not json"}, "transcription_config must be a JSON object"),
        ({"transcription_config": {"diarization": "everyone"}}, None),
        ({"job_id": "bad-id"}, "job_id must be alphanumeric"),
        ({"model_code": "slng/other:1"}, "Unsupported model_code: slng/other:1"),
        ({"metadata": "[1, 2]"}, "metadata must be a JSON object"),
        ({"surprise": "x"}, "Unknown field: surprise"),
    ],
)
async def test_multipart_validation_400(
    sandbox: Sandbox, fields: dict[str, Any], message: str | None
) -> None:
    async with aiohttp.ClientSession() as http:
        await expect_error(await upload_job(http, sandbox, wav_bytes(0.1), **fields), 400, message)
    assert sandbox.jobs().jobs == []


async def test_multipart_missing_parts_and_bad_extension(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("file", wav_bytes(0.1), filename="a.wav")
        resp = await http.post(sandbox.api_url + JOBS, data=form, headers=auth(sandbox))
        await expect_error(resp, 400, "transcription_config is required")
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("transcription_config", "{}")
        form.add_field("job_id", "x1")
        resp = await http.post(sandbox.api_url + JOBS, data=form, headers=auth(sandbox))
        await expect_error(resp, 400, "file is required")
        message = await expect_error(await upload_job(http, sandbox, b"abc", "notes.txt"), 400)
        assert message.startswith("Unsupported file extension: txt")
        await expect_error(await upload_job(http, sandbox, b"", "empty.wav"), 400, "Uploaded file is empty")


async def test_multipart_over_limit_is_413() -> None:
    async with Sandbox(SandboxConfig(max_upload_bytes=1000)).run() as sb, aiohttp.ClientSession() as http:
        await expect_error(
            await upload_job(http, sb, b"\0" * 1001), 413, "File too large. Maximum size is 1 GB."
        )
        assert (await upload_job(http, sb, wav_bytes(0.01))).status == 202  # 204 bytes: under the cap
    assert SandboxConfig().max_upload_bytes == 1_000_000_000


# --- mode B: input_url -----------------------------------------------------------------------------


async def test_input_url_create_is_acknowledged_and_validated(sandbox: Sandbox) -> None:
    url = "https://media.example.com/calls/call-8812.mp3?sig=abc"
    async with aiohttp.ClientSession() as http:
        resp = await post_json(
            http,
            sandbox,
            {"input_url": url, "transcription_config": CONFIG, "job_id": "call1", "metadata": {"q": 1}},
        )
        assert resp.status == 202
        assert (await body_as(resp, JobAcknowledgement)).job_id == "call1"
        job = await get_job(http, sandbox, "call1")
        assert job.input_metadata is not None
        assert job.input_metadata["source"] == "url" and job.input_metadata["format"] == "mp3"
        await expect_error(
            await post_json(
                http, sandbox, {"input_url": "http://x.example/a.mp3", "transcription_config": CONFIG}
            ),
            400,
            "input_url must be an https URL",
        )
        await expect_error(
            await post_json(http, sandbox, {"input_url": "https://x.example/a.mp3"}),
            400,
            "transcription_config is required",
        )


# --- mode C: presign -------------------------------------------------------------------------------


async def test_presign_step1_response_shape(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        target = await presign(
            http,
            sandbox,
            "../../etc/board meeting.WAV",
            job_id="board1",
            content_type="audio/wav",
            tracking={"title": "Board"},
            output_config={"srt_overrides": {"max_line_length": 80, "max_lines": 2}},
            model_code="slng/speechmatics/batch:15.0.0",
            metadata={"ignored": True},
        )
    assert target.job_id == "board1"
    assert target.upload.s3_key == "inputs/board1/board meeting.WAV"
    assert target.upload.s3_uri == f"s3://{sandbox.bucket}/inputs/board1/board meeting.WAV"
    assert target.input_s3_uri == target.upload.s3_uri
    assert target.output_s3_prefix == f"s3://{sandbox.bucket}/outputs/board1/"
    assert target.upload.expires_in == 1800
    assert target.upload.headers == {"Content-Type": "audio/wav"}
    assert target.transcription_config == {
        "language": "en",
        "operating_point": "standard",
        "diarization": "none",
    }
    assert target.tracking == {"title": "Board"}
    assert target.upload.url.startswith(sandbox.s3_url + "/")
    assert "X-Amz-SignedHeaders=content-type%3Bhost" in target.upload.url
    assert sandbox.jobs().jobs == []  # no job before step 3


async def test_presign_defaults(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        target = await presign(http, sandbox)
    assert re.fullmatch(r"job[0-9a-f]{32}", target.job_id)
    assert target.upload.headers == {"Content-Type": "application/octet-stream"}


async def test_presign_three_steps_create_job(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        job_id = await presigned_job(http, sandbox, wav_bytes(2.0))
        job = await get_job(http, sandbox, job_id)
    assert job.input_metadata is not None and job.input_metadata["duration_seconds"] == 2.0
    assert job.input_metadata["source"] == "presign"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"mode": "upload", "filename": "a.wav", "transcription_config": CONFIG}, None),
        ({"mode": "presign", "transcription_config": CONFIG}, "filename is required"),
        ({"mode": "presign", "filename": "a.wav"}, "transcription_config is required"),
        ({"mode": "presign", "filename": "a.exe", "transcription_config": CONFIG}, None),
        (
            {"mode": "presign", "filename": "a.wav", "job_id": "a_b", "transcription_config": CONFIG},
            "job_id must be alphanumeric",
        ),
        ({"mode": "presign", "filename": "a.wav", "transcription_config": {"operating_point": "max"}}, None),
        ({"mode": "presign", "filename": "a.wav", "transcription_config": "en"}, None),
    ],
)
async def test_presign_validation_400(sandbox: Sandbox, payload: dict[str, Any], message: str | None) -> None:
    async with aiohttp.ClientSession() as http:
        await expect_error(await post_json(http, sandbox, payload), 400, message)


async def test_step3_silent_cases(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        # never presigned
        await expect_error(
            await create_from_upload(http, sandbox, "inputs/x/a.wav", "x"),
            400,
            "s3_key was not issued by a presign request",
        )
        target = await presign(http, sandbox, job_id="p1")
        key = target.upload.s3_key
        # presigned but nothing uploaded
        await expect_error(
            await create_from_upload(http, sandbox, key, "p1"), 400, "No uploaded object found at s3_key"
        )
        # uploaded but empty
        assert (await put_upload(http, target, b"")).status == 200
        await expect_error(
            await create_from_upload(http, sandbox, key, "p1"), 400, "Uploaded object is empty"
        )
        assert (await put_upload(http, target, wav_bytes(0.2))).status == 200
        # job_id different from the presigned one
        await expect_error(await create_from_upload(http, sandbox, key, "other"), 400)
        # job_id omitted: the presigned one is used
        resp = await create_from_upload(http, sandbox, key, None)
        assert resp.status == 202
        assert (await body_as(resp, JobAcknowledgement)).job_id == "p1"
        # again: duplicate
        await expect_error(await create_from_upload(http, sandbox, key, "p1"), 409, "Job already exists")
        # bad model code
        await expect_error(
            await create_from_upload(http, sandbox, key, "p1", model_code="m"),
            400,
            "Unsupported model_code: m",
        )
    attempts = sandbox.jobs().attempts
    assert [a.status for a in attempts] == [400, 400, 400, 400, 202, 409, 400]
    assert [a.created for a in attempts].count(True) == 1


async def test_represign_pending_allowed_existing_job_409(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        first = await presign(http, sandbox, job_id="again")
        second = await presign(http, sandbox, job_id="again")
        assert second.upload.s3_key == first.upload.s3_key
        await presigned_job(http, sandbox, job_id="done1")
        resp = await post_json(
            http,
            sandbox,
            {"mode": "presign", "filename": "a.wav", "job_id": "done1", "transcription_config": CONFIG},
        )
        await expect_error(resp, 409, "Job already exists")


async def test_duplicate_job_id_409_in_every_mode(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        assert (await upload_job(http, sandbox, wav_bytes(0.1), job_id="dup")).status == 202
        await expect_error(
            await upload_job(http, sandbox, wav_bytes(0.1), job_id="dup"), 409, "Job already exists"
        )
        resp = await post_json(
            http,
            sandbox,
            {"input_url": "https://e.example/a.wav", "job_id": "dup", "transcription_config": CONFIG},
        )
        await expect_error(resp, 409, "Job already exists")
    attempts = sandbox.jobs().attempts
    assert [(a.job_id, a.status, a.created) for a in attempts] == [
        ("dup", 202, True),
        ("dup", 409, False),
        ("dup", 409, False),
    ]


# --- auth and request framing ----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
async def test_missing_or_unknown_key_is_403_everywhere(sandbox: Sandbox, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as http:
        for method, path in [
            ("POST", JOBS),
            ("GET", JOBS),
            ("GET", JOBS + "/abc"),
            ("DELETE", JOBS + "/abc"),
            ("GET", JOBS + "/abc/files"),
        ]:
            kwargs: dict[str, Any] = (
                {"json": {"input_url": "https://e.example/a.wav", "transcription_config": CONFIG}}
                if method == "POST"
                else {}
            )
            resp = await http.request(method, sandbox.api_url + path, headers=headers, **kwargs)
            await expect_error(resp, 403, "API key id not found")
    assert sandbox.jobs().jobs == []


async def test_second_configured_key_sees_same_jobs() -> None:
    cfg = SandboxConfig(api_keys=("k1", "k2"), job_step_seconds=0)
    async with Sandbox(cfg).run() as sb, aiohttp.ClientSession() as http:
        assert sb.api_key == "k1"
        resp = await http.post(
            sb.api_url + JOBS,
            headers=auth(sb, "k1"),
            json={"input_url": "https://e.example/a.wav", "transcription_config": CONFIG, "job_id": "shared"},
        )
        assert resp.status == 202
        resp = await http.get(sb.api_url + JOBS + "/shared", headers=auth(sb, "k2"))
        assert resp.status == 200


async def test_bad_bodies(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            sandbox.api_url + JOBS,
            data=b"{not json",
            headers={**auth(sandbox), "Content-Type": "application/json"},
        )
        await expect_error(resp, 400, "Request body must be a JSON object")
        await expect_error(await post_json(http, sandbox, [1, 2]), 400, "Request body must be a JSON object")
        await expect_error(await post_json(http, sandbox, {"transcription_config": CONFIG}), 400)
        resp = await http.post(
            sandbox.api_url + JOBS, data=b"x", headers={**auth(sandbox), "Content-Type": "text/plain"}
        )
        await expect_error(resp, 400)


async def test_presign_response_validates_as_model(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await post_json(
            http, sandbox, {"mode": "presign", "filename": "x.flac", "transcription_config": {}}
        )
        assert resp.status == 200
        PresignResponse.model_validate(await resp.json())
