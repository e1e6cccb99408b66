"""GET /v1/batch/jobs: filters, pagination, sorting and parameter validation."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from pipeline.api.models import JobList
from pipeline.sandbox import Sandbox, SandboxConfig
from tests.sandbox.helpers import CONFIG, JOBS, auth, body_as, expect_error, upload_job, wav_bytes

pytestmark = pytest.mark.anyio


async def list_jobs(http: aiohttp.ClientSession, sb: Sandbox, **params: Any) -> JobList:
    async with http.get(
        sb.api_url + JOBS, params={k: str(v) for k, v in params.items()}, headers=auth(sb)
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await body_as(resp, JobList)


async def make_jobs(
    http: aiohttp.ClientSession, sb: Sandbox, count: int, garbage_every: int = 0
) -> list[str]:
    ids = []
    for i in range(count):
        bad = garbage_every and i % garbage_every == 0
        resp = await upload_job(http, sb, b"nope" * 20 if bad else wav_bytes(0.05), job_id=f"j{i:03d}")
        assert resp.status == 202
        ids.append(f"j{i:03d}")
        await asyncio.sleep(0.002)  # distinct submitted_at milliseconds
    return ids


async def test_pagination_and_default_sort() -> None:
    async with Sandbox(SandboxConfig(job_step_seconds=0)).run() as sb, aiohttp.ClientSession() as http:
        ids = await make_jobs(http, sb, 45)
        first = await list_jobs(http, sb)
        assert first.meta.model_dump() == {"page": 1, "page_size": 20, "total": 45, "pages": 3}
        assert [j.job_id for j in first.items] == list(reversed(ids))[:20]  # newest first
        seen: list[str] = []
        page = 1
        while True:
            result = await list_jobs(http, sb, page=page, page_size=7)
            seen += [j.job_id for j in result.items]
            if page >= result.meta.pages:
                break
            page += 1
        assert page == 7 and sorted(seen) == ids and len(seen) == len(set(seen))
        beyond = await list_jobs(http, sb, page=99)
        assert beyond.items == [] and beyond.meta.total == 45
        asc = await list_jobs(http, sb, sort_order="asc", page_size=100)
        assert [j.job_id for j in asc.items] == ids


async def test_status_filter_and_sorting() -> None:
    async with Sandbox(SandboxConfig(job_step_seconds=0)).run() as sb, aiohttp.ClientSession() as http:
        ids = await make_jobs(http, sb, 9, garbage_every=3)  # j000, j003, j006 fail
        failed = await list_jobs(http, sb, status="FAILED")
        assert sorted(j.job_id for j in failed.items) == ["j000", "j003", "j006"]
        assert all(j.error_message is not None for j in failed.items)
        both = await list_jobs(http, sb, status="DONE,FAILED")
        assert both.meta.total == 9
        assert (await list_jobs(http, sb, status="QUEUED")).meta.total == 0
        by_status = await list_jobs(http, sb, sort_by="status", sort_order="asc", page_size=100)
        assert [j.status for j in by_status.items] == ["DONE"] * 6 + ["FAILED"] * 3
        assert (await list_jobs(http, sb, sort_by="model_code")).meta.total == len(ids)
        assert (await list_jobs(http, sb, model_code="slng/speechmatics/batch:15.0.0")).meta.total == 9
        assert (await list_jobs(http, sb, model_code="other")).meta.total == 0


async def test_status_lists_only_the_queue_while_running() -> None:
    async with Sandbox(SandboxConfig(job_step_seconds=10)).run() as sb, aiohttp.ClientSession() as http:
        await make_jobs(http, sb, 2)
        assert (await list_jobs(http, sb, status="QUEUED")).meta.total == 2
        assert (await list_jobs(http, sb, status="DONE")).meta.total == 0


async def test_submitted_bounds_are_inclusive() -> None:
    async with Sandbox(SandboxConfig(job_step_seconds=0)).run() as sb, aiohttp.ClientSession() as http:
        await make_jobs(http, sb, 5)
        items = (await list_jobs(http, sb, sort_order="asc")).items
        stamps = [j.submitted_at for j in items]
        assert all(s is not None for s in stamps)
        middle = await list_jobs(
            http, sb, submitted_after=stamps[1], submitted_before=stamps[3], sort_order="asc"
        )
        assert [j.job_id for j in middle.items] == [j.job_id for j in items[1:4]]
        assert (await list_jobs(http, sb, submitted_after="2000-01-01T00:00:00Z")).meta.total == 5
        assert (await list_jobs(http, sb, submitted_before="2000-01-01T00:00:00+00:00")).meta.total == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"status": "BOGUS"},
            "Invalid status value(s): BOGUS. Allowed: DECODING, DELETED, DONE, FAILED, IN_PROGRESS, QUEUED",
        ),
        (
            {"status": "DONE,nope"},
            "Invalid status value(s): nope. Allowed: DECODING, DELETED, DONE, FAILED, IN_PROGRESS, QUEUED",
        ),
        ({"page": "0"}, None),
        ({"page": "x"}, None),
        ({"page_size": "0"}, None),
        ({"page_size": "101"}, None),
        ({"sort_by": "job_id"}, None),
        ({"sort_order": "up"}, None),
        ({"submitted_after": "yesterday"}, None),
        ({"submitted_before": "2026-13-01"}, None),
    ],
)
async def test_bad_list_params_400(sandbox: Sandbox, params: dict[str, str], message: str | None) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await http.get(sandbox.api_url + JOBS, params=params, headers=auth(sandbox))
        await expect_error(resp, 400, message)


async def test_list_includes_url_jobs(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            sandbox.api_url + JOBS,
            headers=auth(sandbox),
            json={"input_url": "https://e.example/x.wav", "transcription_config": CONFIG},
        )
        assert resp.status == 202
        assert (await list_jobs(http, sandbox, page_size=100)).meta.total == 1
