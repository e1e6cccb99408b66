"""A server that is odd rather than broken: statuses in another case, a job list without `meta`,
output formats in capitals. The client reads each the way the server meant it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import anyio
import pytest

from pipeline.api.client import ApiTimeouts, SlngClient
from pipeline.follow.job_pages import job_pages
from pipeline.transport.rates import RateControl
from pipeline.transport.retry import RetryPolicy
from tests.support.hostile import HostileServer

pytestmark = pytest.mark.anyio

POLICY = RetryPolicy(retries=2, max_elapsed=3.0, base_delay=0.05, max_delay=0.1)


@asynccontextmanager
async def _client(server: HostileServer) -> AsyncIterator[SlngClient]:
    async with aiohttp.ClientSession() as session:
        rates = RateControl.from_limits(1000, 1000, 1000)
        yield SlngClient(session, server.base_url, server.api_key, rates, ApiTimeouts(read=2, total=4))


async def _pages(server: HostileServer) -> list[list[str]]:
    async with _client(server) as client:
        with anyio.fail_after(10):
            return [[job.job_id for job in page] async for page in job_pages(client, POLICY)]


@pytest.mark.parametrize("status", ["done", "Done", "DONE", " done "])
async def test_a_job_status_in_any_case_is_the_documented_status(status: str) -> None:
    with HostileServer(job_status=status).run_in_thread() as server:
        server.created.add("abc1")
        async with _client(server) as client:
            job = await client.get_job("abc1")
    assert job is not None and job.status == "DONE" and job.is_terminal


async def test_list_items_statuses_are_read_case_insensitively() -> None:
    with HostileServer(job_status="Failed").run_in_thread() as server:
        server.created.update({"a1", "a2"})
        async with _client(server) as client:
            listing = await client.list_jobs()
    assert [job.status for job in listing.items] == ["FAILED", "FAILED"]


async def test_a_list_without_meta_pages_until_an_empty_page() -> None:
    with HostileServer(listing="no_meta").run_in_thread() as server:
        server.created.update(f"job{i:04d}" for i in range(230))
        pages = await _pages(server)
        lists = server.requests_to("/v1/batch/jobs")
    assert [len(page) for page in pages] == [100, 100, 30]
    assert sorted(j for page in pages for j in page) == sorted(server.created)
    assert len(lists) == 4  # three pages and the empty one that ends it, no retry


async def test_an_empty_list_without_meta_is_no_jobs_not_a_transient_error() -> None:
    with HostileServer(listing="no_meta").run_in_thread() as server:
        assert await _pages(server) == []
        assert len(server.requests_to("/v1/batch/jobs")) == 1


async def test_a_list_without_meta_that_ignores_page_stops_on_the_repeat() -> None:
    with HostileServer(listing="no_meta_same_page").run_in_thread() as server:
        server.created.update(f"job{i:04d}" for i in range(150))
        pages = await _pages(server)
        assert len(server.requests_to("/v1/batch/jobs")) == 2
    assert [len(page) for page in pages] == [100]


async def test_a_list_with_meta_still_stops_at_its_last_page() -> None:
    with HostileServer().run_in_thread() as server:
        server.created.update(f"job{i:04d}" for i in range(200))
        pages = await _pages(server)
        assert len(server.requests_to("/v1/batch/jobs")) == 2  # meta says 2 pages: no third ask
    assert [len(page) for page in pages] == [100, 100]


async def test_output_formats_from_the_server_are_matched_case_insensitively() -> None:
    with HostileServer(files="upper_formats").run_in_thread() as server:
        server.created.add("abc1")
        async with _client(server) as client:
            files = await client.job_files("abc1")
    assert [o.format for o in files.outputs] == ["json", "txt", "srt"]
    found = files.output("srt")
    assert found is not None and found.key == "outputs/abc1/transcript.srt"
