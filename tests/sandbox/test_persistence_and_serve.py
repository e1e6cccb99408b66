"""State survives a restart with data_dir; `serve` runs standalone and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from pipeline.api.models import JobFiles
from pipeline.sandbox import Sandbox, SandboxConfig
from pipeline.sandbox.command import sandbox_command
from tests.sandbox.helpers import (
    JOBS,
    auth,
    body_as,
    create_from_upload,
    get_job,
    presign,
    presigned_job,
    put_upload,
    wav_bytes,
)

pytestmark = pytest.mark.anyio


async def test_state_and_objects_survive_restart(tmp_path: Path) -> None:
    cfg = SandboxConfig(data_dir=tmp_path, job_step_seconds=0)
    async with Sandbox(cfg).run() as sb, aiohttp.ClientSession() as http:
        done = await presigned_job(http, sb, wav_bytes(1.0), job_id="keep1")
        await get_job(http, sb, done)  # DONE: outputs written
        pending = await presign(http, sb, job_id="keep2")
        assert (await put_upload(http, pending, wav_bytes(0.5))).status == 200
        before = sb.objects()
        attempts = sb.jobs().attempts
    assert (tmp_path / "state.json").exists()
    async with Sandbox(cfg).run() as sb, aiohttp.ClientSession() as http:
        assert sb.objects() == before
        assert sb.jobs().attempts == attempts
        job = await get_job(http, sb, "keep1")
        assert job.status == "DONE" and job.input_metadata is not None
        # the presign made before the restart can still be completed
        resp = await create_from_upload(http, sb, pending.upload.s3_key, "keep2")
        assert resp.status == 202
        async with http.get(f"{sb.api_url}{JOBS}/keep1/files", headers=auth(sb)) as resp:
            files = await body_as(resp, JobFiles)
        async with http.get(files.inputs[0].download_url) as resp:  # URL for the new port
            assert await resp.read() == wav_bytes(1.0)


async def test_memory_mode_forgets() -> None:
    async with Sandbox(SandboxConfig(job_step_seconds=0)).run() as sb, aiohttp.ClientSession() as http:
        await presigned_job(http, sb, job_id="gone")
    async with Sandbox(SandboxConfig(job_step_seconds=0)).run() as sb:
        assert sb.jobs().jobs == [] and sb.objects().objects == []


async def test_startup_is_fast() -> None:
    Sandbox(SandboxConfig())  # warm imports
    async with Sandbox(SandboxConfig()).run():
        pass
    start = time.perf_counter()
    async with Sandbox(SandboxConfig()).run() as sb:
        elapsed = time.perf_counter() - start
        assert sb.api_url.startswith("http://127.0.0.1:") and sb.s3_url.startswith("http://127.0.0.1:")
    assert elapsed < 0.5


def test_serve_standalone_until_sigterm(tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text("seed = 1\n[operations.list]\nerrors = [{status = 503, nth = [1]}]\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline.sandbox",
            "--faults",
            str(faults),
            "--data-dir",
            str(tmp_path / "d"),
            "--job-step-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert lines[0].startswith("SLNG sandbox API: http://127.0.0.1:")
        assert lines[1].startswith("S3: http://127.0.0.1:")
        assert lines[2] == "API key: sk-sandbox-test"
        api = lines[0].split(": ", 1)[1]

        async def two_lists() -> list[int]:
            async with aiohttp.ClientSession() as http:
                out = []
                for _ in range(2):
                    async with http.get(api + JOBS, headers={"Authorization": "Bearer sk-sandbox-test"}) as r:
                        out.append(r.status)
                return out

        assert asyncio.run(two_lists()) == [503, 200]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_every_sandbox_option_names_a_config_field() -> None:
    """The command hands its options to SandboxConfig by name: one named otherwise would be dropped."""
    options = {param.name for param in sandbox_command.params}
    assert options and options <= set(SandboxConfig.model_fields)
