"""Job lifecycle, get / delete / files, and the synthetic transcripts."""

from __future__ import annotations

import asyncio
import itertools
import json
import re

import aiohttp
import pytest

from pipeline.api.models import BatchJob, JobAcknowledgement, JobFiles
from pipeline.sandbox import Sandbox, SandboxConfig
from tests.sandbox.helpers import (
    JOBS,
    auth,
    body_as,
    expect_error,
    get_job,
    presigned_job,
    upload_job,
    wait_terminal,
    wav_bytes,
)

pytestmark = pytest.mark.anyio
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


async def test_lifecycle_progresses_on_the_clock() -> None:
    async with Sandbox(SandboxConfig(job_step_seconds=0.3)).run() as sb, aiohttp.ClientSession() as http:
        job_id = await presigned_job(http, sb, wav_bytes(1.0))
        seen = [(await get_job(http, sb, job_id)).status]
        for _ in range(3):
            await asyncio.sleep(0.3)
            seen.append((await get_job(http, sb, job_id)).status)
        assert seen == ["QUEUED", "IN_PROGRESS", "DECODING", "DONE"]
        job = await get_job(http, sb, job_id)
    for stamp in (job.submitted_at, job.started_at, job.completed_at, job.updated_at):
        assert stamp is not None and ISO_Z.match(stamp), stamp
    assert job.deleted_at is None and job.expired_at is None and job.error_message is None
    assert job.model_code == "slng/speechmatics/batch:15.0.0"
    assert job.output_metadata == {"formats": ["json", "srt", "txt"]}


async def test_zero_step_is_done_on_first_read() -> None:
    async with Sandbox(SandboxConfig(job_step_seconds=0)).run() as sb, aiohttp.ClientSession() as http:
        job_id = await presigned_job(http, sb)
        assert (await get_job(http, sb, job_id)).status == "DONE"


@pytest.mark.parametrize(
    ("data", "name", "fmt"),
    [
        (b"ID3\x03\x00" + b"\0" * 200, "a.mp3", "mp3"),
        (b"\xff\xfb\x90\x00" + b"\0" * 200, "b.mp3", "mp3"),
        (b"fLaC" + b"\0" * 200, "c.flac", "flac"),
        (b"OggS" + b"\0" * 200, "d.ogg", "ogg"),
        (b"\0\0\0\x20ftypM4A " + b"\0" * 200, "e.m4a", "m4a"),
        (b"#!AMR\n" + b"\0" * 200, "f.amr", "amr"),
        (b"\xff\xf1\x50\x80" + b"\0" * 200, "g.aac", "aac"),
    ],
)
async def test_known_containers_are_decodable(sandbox: Sandbox, data: bytes, name: str, fmt: str) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await upload_job(http, sandbox, data, name)
        job = await wait_terminal(http, sandbox, (await body_as(resp, JobAcknowledgement)).job_id)
    assert job.status == "DONE"
    assert job.input_metadata is not None and job.input_metadata["format"] == fmt


async def test_garbage_audio_fails(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        job_id = await presigned_job(http, sandbox, b"this is not audio at all" * 10, "junk.wav")
        job = await wait_terminal(http, sandbox, job_id)
        assert job.status == "FAILED"
        assert job.error_message is not None
        assert job.error_message.message == "The audio file could not be decoded."
        assert job.completed_at is not None
        resp = await http.get(f"{sandbox.api_url}{JOBS}/{job_id}/files", headers=auth(sandbox))
        await expect_error(resp, 400, "Job is not DONE")
    assert not any(o.key.startswith(f"outputs/{job_id}/") for o in sandbox.objects().objects)


async def test_get_errors(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        await expect_error(
            await http.get(f"{sandbox.api_url}{JOBS}/nope", headers=auth(sandbox)), 404, "Job not found"
        )
        for path in ("bad-id", "bad_id"):
            for suffix in ("", "/files"):
                resp = await http.get(f"{sandbox.api_url}{JOBS}/{path}{suffix}", headers=auth(sandbox))
                await expect_error(resp, 400, "job_id must be alphanumeric")
            resp = await http.delete(f"{sandbox.api_url}{JOBS}/{path}", headers=auth(sandbox))
            await expect_error(resp, 400, "job_id must be alphanumeric")
        await expect_error(
            await http.get(f"{sandbox.api_url}{JOBS}/nope/files", headers=auth(sandbox)), 404, "Job not found"
        )
        await expect_error(
            await http.delete(f"{sandbox.api_url}{JOBS}/nope", headers=auth(sandbox)), 404, "Job not found"
        )


async def test_delete_rules() -> None:
    async with Sandbox(SandboxConfig(job_step_seconds=0.2)).run() as sb, aiohttp.ClientSession() as http:
        job_id = await presigned_job(http, sb)
        url = f"{sb.api_url}{JOBS}/{job_id}"
        await expect_error(
            await http.delete(url, headers=auth(sb)), 409, "Job must be DONE or FAILED to delete"
        )
        await wait_terminal(http, sb, job_id)
        resp = await http.delete(url, headers=auth(sb))
        assert resp.status == 202
        assert await body_as(resp, JobAcknowledgement) == JobAcknowledgement(job_id=job_id, status="DELETED")
        job = await get_job(http, sb, job_id)
        assert job.status == "DELETED" and job.deleted_at is not None and ISO_Z.match(job.deleted_at)
        await expect_error(await http.delete(url, headers=auth(sb)), 409)
        await expect_error(await http.get(url + "/files", headers=auth(sb)), 400, "Job is not DONE")
        # a FAILED job can be deleted too
        failed = await presigned_job(http, sb, b"garbage" * 9)
        await wait_terminal(http, sb, failed)
        assert (await http.delete(f"{sb.api_url}{JOBS}/{failed}", headers=auth(sb))).status == 202


async def test_files_before_done_is_400() -> None:
    async with Sandbox(SandboxConfig(job_step_seconds=5)).run() as sb, aiohttp.ClientSession() as http:
        job_id = await presigned_job(http, sb)
        resp = await http.get(f"{sb.api_url}{JOBS}/{job_id}/files", headers=auth(sb))
        await expect_error(resp, 400, "Job is not DONE")


async def files_of(http: aiohttp.ClientSession, sb: Sandbox, job_id: str) -> JobFiles:
    await wait_terminal(http, sb, job_id)
    async with http.get(f"{sb.api_url}{JOBS}/{job_id}/files", headers=auth(sb)) as resp:
        assert resp.status == 200
        return await body_as(resp, JobFiles)


async def test_files_give_presigned_downloads_of_inputs_and_outputs(sandbox: Sandbox) -> None:
    audio = wav_bytes(3.0)
    async with aiohttp.ClientSession() as http:
        job_id = await presigned_job(http, sandbox, audio, "talk.wav")
        files = await files_of(http, sandbox, job_id)
        assert files.job_id == job_id
        assert [f.key for f in files.inputs] == [f"inputs/{job_id}/talk.wav"]
        assert [o.format for o in files.outputs] == ["json", "txt", "srt"]
        for out in files.outputs:
            assert out.key == f"outputs/{job_id}/transcript.{out.format}"
            assert out.s3_uri == f"s3://{sandbox.bucket}/{out.key}"
            assert "X-Amz-Expires=3600" in out.download_url
        async with http.get(files.inputs[0].download_url) as resp:
            assert resp.status == 200 and await resp.read() == audio
        bodies = {}
        for out in files.outputs:
            async with http.get(out.download_url) as resp:
                assert resp.status == 200
                body = await resp.read()
                info = sandbox.object_info(out.key)
                assert info is not None and resp.headers["ETag"] == f'"{info.md5}"'
                bodies[out.format] = body.decode()
    transcript = json.loads(bodies["json"])
    words = [r for r in transcript["results"] if r["type"] == "word"]
    assert words and all(0 <= w["start_time"] < w["end_time"] <= 3.0 for w in words)
    assert all(a["end_time"] <= b["start_time"] for a, b in itertools.pairwise(words))
    text_words = bodies["txt"].replace(".", "").split()
    assert text_words == [w["alternatives"][0]["content"] for w in words]
    assert bodies["srt"].startswith("1\n00:00:00,")


async def test_transcripts_are_deterministic_per_job_id() -> None:
    texts = []
    for _ in range(2):
        async with Sandbox(SandboxConfig(job_step_seconds=0)).run() as sb, aiohttp.ClientSession() as http:
            await presigned_job(http, sb, wav_bytes(5.0), job_id="same1")
            files = await files_of(http, sb, "same1")
            async with http.get(files.outputs[1].download_url) as resp:
                texts.append(await resp.text())
    assert texts[0] == texts[1]


async def test_srt_honours_overrides(sandbox: Sandbox) -> None:
    overrides = {"srt_overrides": {"max_line_length": 20, "max_lines": 1}}
    async with aiohttp.ClientSession() as http:
        resp = await upload_job(http, sandbox, wav_bytes(20.0), output_config=overrides)
        job_id = (await body_as(resp, JobAcknowledgement)).job_id
        files = await files_of(http, sandbox, job_id)
        srt_url = next(o.download_url for o in files.outputs if o.format == "srt")
        async with http.get(srt_url) as resp:
            srt = await resp.text()
    blocks = [b.split("\n") for b in srt.strip().split("\n\n")]
    assert len(blocks) > 5
    for i, block in enumerate(blocks, 1):
        assert block[0] == str(i)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", block[1])
        text_lines = block[2:]
        assert 1 <= len(text_lines) <= 1
        assert all(len(line) <= 20 for line in text_lines)


async def test_job_detail_validates_and_echoes_config(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        job_id = await presigned_job(http, sandbox, tracking={"title": "x", "tags": ["a"]})
        async with http.get(f"{sandbox.api_url}{JOBS}/{job_id}", headers=auth(sandbox)) as resp:
            raw = await resp.json()
    job = BatchJob.model_validate(raw)
    assert job.job_config == {
        "type": "transcription",
        "transcription_config": {"language": "en", "operating_point": "standard", "diarization": "none"},
    }
    assert "api_key" not in json.dumps(raw).replace("api_key_id", "")
    assert sandbox.api_key not in json.dumps(raw)
