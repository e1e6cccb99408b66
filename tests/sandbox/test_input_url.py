"""Mode B: the sandbox downloads `input_url` in the background, as the real service does.

Inputs are served over loopback HTTP by a small aiohttp server of the test's own (the sandbox takes
plain http only to loopback) or by the sandbox's own S3 through a presigned GET.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from pipeline.api.models import BatchJob
from pipeline.sandbox import Sandbox, SandboxConfig
from pipeline.sandbox.url_input import input_filename
from tests.sandbox.helpers import (
    CONFIG,
    JOBS,
    auth,
    expect_error,
    get_job,
    presign_get_url,
    s3_client,
    wait_terminal,
    wav_bytes,
)
from tests.support.loopback import serving

pytestmark = pytest.mark.anyio


@dataclass
class Origin:
    """A loopback HTTP server: `/<name>` answers `bodies[name]`, or `statuses[name]` with no body;
    a name in `gates` waits for its event before answering."""

    url: str = ""
    bodies: dict[str, bytes] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requested.append(request.raw_path)
        self.arrived.set()
        if name in self.gates:
            await self.gates[name].wait()
        if name in self.statuses:
            return web.Response(status=self.statuses[name], text="no")
        return web.Response(body=self.bodies.get(name, b""), content_type="application/octet-stream")


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    served = Origin()
    app = web.Application()
    app.router.add_get("/{name}", served.handle)
    async with serving(app) as served.url:
        try:
            yield served
        finally:
            for gate in served.gates.values():
                gate.set()


async def create(http: aiohttp.ClientSession, sb: Sandbox, url: str, job_id: str) -> aiohttp.ClientResponse:
    payload = {"input_url": url, "transcription_config": CONFIG, "job_id": job_id}
    resp = await http.post(sb.api_url + JOBS, json=payload, headers=auth(sb))
    await resp.read()
    return resp


async def finished(http: aiohttp.ClientSession, sb: Sandbox, job_id: str) -> BatchJob:
    job = await wait_terminal(http, sb, job_id, limit_s=20)
    assert job.is_terminal, job.status
    return job


async def test_input_url_is_downloaded_and_its_audio_read(sandbox: Sandbox, origin: Origin) -> None:
    audio = wav_bytes(1.5)
    origin.bodies["call.wav"] = audio
    async with aiohttp.ClientSession() as http:
        assert (await create(http, sandbox, f"{origin.url}/call.wav?sig=abc%2Fdef", "call1")).status == 202
        job = await finished(http, sandbox, "call1")
        assert job.status == "DONE" and job.error_message is None
        assert job.input_metadata is not None
        assert job.input_metadata["size_bytes"] == len(audio)
        assert job.input_metadata["format"] == "wav"
        assert job.input_metadata["duration_seconds"] == 1.5
        async with http.get(f"{sandbox.api_url}{JOBS}/call1/files", headers=auth(sandbox)) as resp:
            files = await resp.json()
        async with http.get(files["inputs"][0]["download_url"]) as resp:
            assert await resp.read() == audio  # the sandbox kept the exact bytes it downloaded
    assert files["inputs"][0]["key"] == "inputs/call1/call.wav"
    assert origin.requested == ["/call.wav?sig=abc%2Fdef"]  # byte for byte, as signed


async def test_create_answers_before_the_download_ends(sandbox: Sandbox, origin: Origin) -> None:
    origin.bodies["slow.wav"] = wav_bytes(0.5)
    gate = origin.gates["slow.wav"] = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        assert (await create(http, sandbox, f"{origin.url}/slow.wav", "slow1")).status == 202
        await origin.arrived.wait()  # the download has started and is held by the gate
        for _ in range(3):  # however long it takes, the job waits in QUEUED
            assert (await get_job(http, sandbox, "slow1")).status == "QUEUED"
        gate.set()
        assert (await finished(http, sandbox, "slow1")).status == "DONE"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            403,
            "The input_url could not be downloaded: access denied (HTTP 403);"
            " a presigned URL may have expired.",
        ),
        (404, "The input_url could not be downloaded: not found (HTTP 404)."),
        (500, "The input_url could not be downloaded (HTTP 500)."),
    ],
)
async def test_a_refused_url_ends_the_job_failed(
    sandbox: Sandbox, origin: Origin, status: int, message: str
) -> None:
    origin.statuses["gone.wav"] = status
    async with aiohttp.ClientSession() as http:
        assert (
            await create(http, sandbox, f"{origin.url}/gone.wav?X-Amz-Signature=secret", "gone1")
        ).status == 202
        job = await finished(http, sandbox, "gone1")
    assert job.status == "FAILED"
    assert job.error_message is not None and job.error_message.message == message
    assert "secret" not in job.model_dump_json()


async def test_content_that_is_not_audio_fails_as_undecodable(sandbox: Sandbox, origin: Origin) -> None:
    origin.bodies["page.wav"] = b"<html>login required</html>"
    async with aiohttp.ClientSession() as http:
        await create(http, sandbox, f"{origin.url}/page.wav", "html1")
        job = await finished(http, sandbox, "html1")
    assert job.status == "FAILED"
    assert job.error_message is not None
    assert job.error_message.message == "The audio file could not be decoded."


async def test_an_unreachable_host_ends_the_job_failed(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        await create(http, sandbox, "http://127.0.0.1:9/x.wav", "dead1")  # port 9: nothing listens
        job = await finished(http, sandbox, "dead1")
    assert job.status == "FAILED" and job.error_message is not None
    assert (
        job.error_message.message == "The input_url could not be downloaded: the server could not be reached."
    )


async def test_an_input_over_the_cap_fails_too_large(origin: Origin) -> None:
    origin.bodies["big.wav"] = wav_bytes(1.0)  # 16 044 bytes
    async with (
        Sandbox(SandboxConfig(job_step_seconds=0, max_upload_bytes=10_000)).run() as sb,
        aiohttp.ClientSession() as http,
    ):
        await create(http, sb, f"{origin.url}/big.wav", "big1")
        job = await finished(http, sb, "big1")
    assert job.status == "FAILED" and job.error_message is not None
    assert job.error_message.message == "File too large. Maximum size is 1 GB."


async def test_plain_http_is_refused_except_to_loopback(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        for url in ("http://media.example.com/a.wav", "ftp://127.0.0.1/a.wav", "http:///a.wav"):
            await expect_error(
                await create(http, sandbox, url, "plain1"), 400, "input_url must be an https URL"
            )
        loopback = ("http://127.0.0.1:9/a.wav", "http://localhost:9/a.wav", "http://[::1]:9/a.wav")
        for n, url in enumerate(loopback):
            assert (await create(http, sandbox, url, f"loop{n}")).status == 202


async def test_a_presigned_get_from_the_sandbox_s3_is_fetched(sandbox: Sandbox) -> None:
    audio = wav_bytes(0.25)
    sandbox.write_object("archive/2026/rec one.wav", audio, "audio/wav")
    url = presign_get_url(s3_client(sandbox), sandbox.bucket, "archive/2026/rec one.wav")
    forged = presign_get_url(s3_client(sandbox, secret="wrong"), sandbox.bucket, "archive/2026/rec one.wav")
    async with aiohttp.ClientSession() as http:
        assert (await create(http, sandbox, url, "s3good")).status == 202
        assert (await create(http, sandbox, forged, "s3bad")).status == 202
        good = await finished(http, sandbox, "s3good")
        bad = await finished(http, sandbox, "s3bad")
    assert good.status == "DONE"
    assert good.input_metadata is not None and good.input_metadata["size_bytes"] == len(audio)
    assert bad.status == "FAILED" and bad.error_message is not None
    assert "HTTP 403" in bad.error_message.message


def test_input_filename_keeps_plain_audio_names_only() -> None:
    assert input_filename("https://h/a/call-1.mp3?x=1") == "call-1.mp3"
    assert input_filename("https://h/a/rec%20one.wav") == "input.wav"
    assert input_filename("https://h/a/") == "input"
    assert input_filename("https://h/a/readme.txt") == "input"
