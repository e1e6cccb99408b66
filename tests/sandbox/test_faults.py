"""Each fault kind happens as configured, and the read-back interface reports it."""

from __future__ import annotations

import asyncio
import time
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest

from pipeline.api.models import BatchJob, ErrorBody, JobAcknowledgement, PresignResponse
from pipeline.sandbox import FaultPlan, Sandbox, SandboxConfig
from pipeline.sandbox.readback import JobsReadback, ObjectsReadback
from pipeline.sandbox.request_stats import SandboxStats
from tests.sandbox.helpers import (
    CONFIG,
    JOBS,
    auth,
    body_as,
    get_job,
    presign,
    presign_get_url,
    presign_put_url,
    put_upload,
    s3_client,
    s3_error_code,
    wav_bytes,
)

pytestmark = pytest.mark.anyio


def plan(**operations: Any) -> FaultPlan:
    return FaultPlan.model_validate({"seed": 42, "operations": operations})


async def url_create(http: aiohttp.ClientSession, sb: Sandbox, job_id: str) -> aiohttp.ClientResponse:
    payload = {
        "input_url": f"https://e.example/{job_id}.wav",
        "transcription_config": CONFIG,
        "job_id": job_id,
    }
    resp = await http.post(sb.api_url + JOBS, json=payload, headers=auth(sb))
    await resp.read()
    return resp


async def put_codes(sb: Sandbox, times: int) -> list[tuple[int, str]]:
    """PUT three bytes `times` times with one presigned URL: each answer's status and S3 error code."""
    url = presign_put_url(s3_client(sb), sb.bucket, "k")
    codes = []
    async with aiohttp.ClientSession() as http:
        for _ in range(times):
            async with http.put(
                url, data=b"abc", headers={"Content-Type": "application/octet-stream"}
            ) as resp:
                codes.append((resp.status, s3_error_code(await resp.read())[0] if resp.status != 200 else ""))
    return codes


async def list_timings(sb: Sandbox, times: int) -> list[float]:
    """How long each of `times` job listings took (seconds), each answered 200."""
    elapsed = []
    async with aiohttp.ClientSession() as http:
        for _ in range(times):
            start = time.monotonic()
            async with http.get(sb.api_url + JOBS, headers=auth(sb)) as resp:
                assert resp.status == 200
            elapsed.append(time.monotonic() - start)
    return elapsed


def fresh_session() -> aiohttp.ClientSession:
    """One connection per request: no pooled-connection retry can hide a dropped connection."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


# --- status faults ---------------------------------------------------------------------------------


async def test_status_probability_is_seeded_and_counted(sandbox: Sandbox) -> None:
    sequences: list[list[int]] = []
    for _ in range(2):
        sandbox.set_faults(plan(create={"errors": [{"status": 503, "probability": 0.5}]}))
        async with aiohttp.ClientSession() as http:
            statuses = [(await url_create(http, sandbox, f"p{len(sequences)}n{i}")).status for i in range(40)]
        sequences.append(statuses)
    assert sequences[0] == sequences[1]  # same seed, same faults
    failures = sequences[0].count(503)
    assert 8 <= failures <= 32 and set(sequences[0]) == {202, 503}
    stats = sandbox.stats()
    assert stats.injected["status_503"] == 2 * failures
    assert stats.requests["create"].by_status == {"202": 80 - 2 * failures, "503": 2 * failures}
    injected = [a for a in sandbox.jobs().attempts if a.injected == "status_503"]
    assert len(injected) == 2 * failures and not any(a.created for a in injected)
    assert all(a.job_id is not None for a in injected)  # read from the JSON body


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_nth_schedule_hits_exactly_that_request(sandbox: Sandbox, status: int) -> None:
    sandbox.set_faults(
        plan(
            create={"errors": [{"status": status, "nth": [3]}]},
            get={"errors": [{"status": status, "nth": [1]}]},
        )
    )
    async with aiohttp.ClientSession() as http:
        results = []
        for i in range(5):
            resp = await url_create(http, sandbox, f"n{i}")
            results.append(resp.status)
            if resp.status != 202:
                assert ErrorBody.model_validate(await resp.json()).error
        assert results == [202, 202, status, 202, 202]
        resp = await http.get(f"{sandbox.api_url}{JOBS}/n0", headers=auth(sandbox))
        assert resp.status == status
        await body_as(resp, ErrorBody)
        assert (await get_job(http, sandbox, "n0")).job_id == "n0"
    assert "n2" not in {j.job_id for j in sandbox.jobs().jobs}
    assert sandbox.stats().injected_by_operation == {
        "create": {f"status_{status}": 1},
        "get": {f"status_{status}": 1},
    }


async def test_s3_faults_are_xml(sandbox: Sandbox) -> None:
    sandbox.set_faults(plan(put={"errors": [{"status": 503, "nth": [1]}, {"status": 500, "nth": [2]}]}))
    assert await put_codes(sandbox, 3) == [(503, "SlowDown"), (500, "InternalError"), (200, "")]
    assert sandbox.stats().requests["put"].by_status == {"503": 1, "500": 1, "200": 1}


async def test_signature_mismatch_refuses_a_valid_url_and_listeners_see_it(sandbox: Sandbox) -> None:
    sandbox.set_faults(plan(put={"signature_mismatch": {"nth": [1]}}))
    arrivals: list[tuple[str, int]] = []
    outcomes: list[tuple[str, str]] = []
    sandbox.listen(
        on_arrival=lambda op, nth: arrivals.append((op, nth)), on_outcome=lambda *o: outcomes.append(o)
    )
    assert await put_codes(sandbox, 2) == [(403, "SignatureDoesNotMatch"), (200, "")]
    assert arrivals == [("put", 1), ("put", 2)] and outcomes == [("put", "403"), ("put", "200")]
    assert sandbox.stats().injected == {"signature_mismatch": 1}
    with pytest.raises(ValueError, match="signature_mismatch applies to put only"):
        plan(create={"signature_mismatch": {"nth": [1]}})


async def test_429_retry_after_seconds_and_http_date(sandbox: Sandbox) -> None:
    sandbox.set_faults(
        plan(
            list={
                "errors": [
                    {"status": 429, "nth": [1], "retry_after": 3},
                    {"status": 429, "nth": [2], "retry_after": 30, "retry_after_http_date": True},
                ]
            }
        )
    )
    async with aiohttp.ClientSession() as http:
        resp = await http.get(sandbox.api_url + JOBS, headers=auth(sandbox))
        assert resp.status == 429 and resp.headers["Retry-After"] == "3"
        await body_as(resp, ErrorBody)
        resp = await http.get(sandbox.api_url + JOBS, headers=auth(sandbox))
        assert resp.status == 429
        when = parsedate_to_datetime(resp.headers["Retry-After"]).timestamp()
        assert 25 < when - time.time() <= 31
        assert (await http.get(sandbox.api_url + JOBS, headers=auth(sandbox))).status == 200
    assert sandbox.stats().injected["status_429"] == 2


# --- connection faults -----------------------------------------------------------------------------


async def test_put_reset_after_n_bytes(sandbox: Sandbox) -> None:
    # aiohttp silently retries an idempotent PUT once after a disconnect: reset both attempts.
    sandbox.set_faults(plan(put={"reset": {"after_bytes": 50_000, "nth": [1, 2]}}))
    url = presign_put_url(s3_client(sandbox), sandbox.bucket, "reset.bin")
    body = b"z" * 400_000
    async with fresh_session() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.put(url, data=body, headers={"Content-Type": "application/octet-stream"}) as resp:
                await resp.read()
        assert sandbox.object_info("reset.bin") is None
        async with http.put(url, data=body, headers={"Content-Type": "application/octet-stream"}) as resp:
            assert resp.status == 200
    stats = sandbox.stats()
    assert stats.injected["reset"] == 2
    assert stats.requests["put"].by_status == {"reset": 2, "200": 1}


async def test_lost_create_response_still_creates_the_job(sandbox: Sandbox) -> None:
    sandbox.set_faults(plan(create={"lost_response": {"nth": [1]}}))
    async with fresh_session() as http:
        with pytest.raises(aiohttp.ClientError):
            await url_create(http, sandbox, "lost1")
        job = await get_job(http, sandbox, "lost1")  # the duplicate-job trap: it exists
        assert job.status in ("QUEUED", "IN_PROGRESS", "DECODING", "DONE")
        retry = await url_create(http, sandbox, "lost1")
        assert retry.status == 409
    async with aiohttp.ClientSession() as http, http.get(sandbox.api_url + "/__sandbox__/jobs") as resp:
        readback = JobsReadback.model_validate(await resp.json())
    assert [j.job_id for j in readback.jobs] == ["lost1"]
    attempts = [(a.job_id, a.status, a.created, a.response_lost) for a in readback.attempts]
    assert attempts == [("lost1", 202, True, True), ("lost1", 409, False, False)]
    assert sandbox.stats().requests["create"].by_status == {"lost": 1, "409": 1}
    assert sandbox.stats().injected["lost_response"] == 1


async def test_lost_presign_and_put_responses(sandbox: Sandbox) -> None:
    # put: nth 1 and 2, because aiohttp retries an idempotent PUT once by itself
    sandbox.set_faults(plan(presign={"lost_response": {"nth": [1]}}, put={"lost_response": {"nth": [1, 2]}}))
    async with fresh_session() as http:
        payload = {"mode": "presign", "filename": "a.wav", "job_id": "lp", "transcription_config": CONFIG}
        with pytest.raises(aiohttp.ClientError):
            async with http.post(sandbox.api_url + JOBS, json=payload, headers=auth(sandbox)) as resp:
                await resp.read()
        target = await presign(http, sandbox, job_id="lp")  # presign again: allowed, same key
        data = wav_bytes(0.2)
        with pytest.raises(aiohttp.ClientError):
            await put_upload(http, target, data)
        info = sandbox.object_info(target.upload.s3_key)
        assert info is not None and info.size == len(data)  # committed before the drop
        resp = await http.post(
            sandbox.api_url + JOBS,
            headers=auth(sandbox),
            json={"s3_key": target.upload.s3_key, "job_id": "lp", "transcription_config": CONFIG},
        )
        assert resp.status == 202
    assert sandbox.stats().injected_by_operation == {
        "presign": {"lost_response": 1},
        "put": {"lost_response": 2},
    }


# --- latency, rate limit, bandwidth, expiry ----------------------------------------------------------


async def test_fixed_latency(sandbox: Sandbox) -> None:
    sandbox.set_faults(plan(get={"latency": {"fixed_ms": 250}}))
    async with aiohttp.ClientSession() as http:
        await url_create(http, sandbox, "lat")
        start = time.monotonic()
        await get_job(http, sandbox, "lat")
        slow = time.monotonic() - start
        start = time.monotonic()
        async with http.get(sandbox.api_url + JOBS, headers=auth(sandbox)) as resp:
            assert resp.status == 200
        fast = time.monotonic() - start
    assert slow >= 0.25 and fast < 0.2
    assert sandbox.stats().injected_by_operation == {"get": {"latency": 1}}


async def test_latency_on_chosen_occurrences_only(sandbox: Sandbox) -> None:
    """`nth` delays exactly those requests of the operation (e.g. "the first download is late")."""
    sandbox.set_faults(plan(list={"latency": {"fixed_ms": 300, "nth": [2]}}))
    elapsed = await list_timings(sandbox, 3)
    assert elapsed[1] >= 0.3 and elapsed[0] < 0.2 and elapsed[2] < 0.2
    assert sandbox.stats().injected_by_operation == {"list": {"latency": 1}}


@pytest.mark.parametrize(
    "latency",
    [
        {"distribution": "uniform", "low_ms": 60, "high_ms": 120},
        {"distribution": "exponential", "mean_ms": 40},
    ],
)
async def test_latency_distributions(sandbox: Sandbox, latency: dict[str, Any]) -> None:
    sandbox.set_faults(plan(list={"latency": latency}))
    elapsed = await list_timings(sandbox, 6)
    if latency["distribution"] == "uniform":
        assert all(0.06 <= e < 0.5 for e in elapsed)
    else:
        assert sum(elapsed) / len(elapsed) > 0.005 and len(set(round(e, 3) for e in elapsed)) > 1
    assert sandbox.stats().injected["latency"] == 6


async def test_rate_limit_answers_429_with_retry_after(sandbox: Sandbox) -> None:
    sandbox.set_faults(plan(create={"rate_limit": {"per_second": 2, "burst": 2}}))
    async with aiohttp.ClientSession() as http:
        responses = [await url_create(http, sandbox, f"r{i}") for i in range(5)]
        assert [r.status for r in responses] == [202, 202, 429, 429, 429]
        for r in responses[2:]:
            assert int(r.headers["Retry-After"]) >= 1
        await asyncio.sleep(0.6)
        assert (await url_create(http, sandbox, "r9")).status == 202  # the bucket refilled
    assert sandbox.stats().injected["rate_limited"] == 3
    assert sandbox.stats().requests["create"].by_status == {"202": 3, "429": 3}


async def test_hidden_capacity_changes_mid_run_and_is_counted_per_second(sandbox: Sandbox) -> None:
    sandbox.set_capacity(create=1000)  # in-process
    capacity_url = sandbox.api_url + "/__sandbox__/capacity"
    async with aiohttp.ClientSession() as http:
        assert [(await url_create(http, sandbox, f"c{i}")).status for i in range(5)] == [202] * 5
        async with http.post(capacity_url, json={"create": 1}) as resp:  # over HTTP, mid-run
            assert resp.status == 200
            assert (await resp.json())["operations"]["create"]["rate_limit"]["per_second"] == 1
        statuses = [(await url_create(http, sandbox, f"d{i}")).status for i in range(3)]
        assert statuses == [202, 429, 429]  # a burst of one second's worth of the new capacity
        async with http.post(capacity_url, json={"create": None}) as resp:
            assert resp.status == 200
        assert (await url_create(http, sandbox, "e0")).status == 202
        for bad in ({"nope": 1}, {"create": -1}, ["create"]):
            async with http.post(capacity_url, json=bad) as resp:
                assert resp.status == 400, bad
    stats = sandbox.stats()
    assert stats.requests["create"].by_status == {"202": 7, "429": 2}  # nothing was reset
    line = stats.timeline["create"]
    assert sum(s.accepted for s in line) == 7 and sum(s.throttled for s in line) == 2
    with pytest.raises(ValueError, match="unknown operation"):
        sandbox.set_capacity(uploads=3)


async def test_bandwidth_cap_over_whole_s3_server(sandbox: Sandbox) -> None:
    sandbox.set_faults(FaultPlan(s3_bandwidth_bytes_per_second=200_000))
    client = s3_client(sandbox)
    body = b"b" * 60_000
    headers = {"Content-Type": "application/octet-stream"}
    async with aiohttp.ClientSession() as http:

        async def one(key: str) -> None:
            async with http.put(
                presign_put_url(client, sandbox.bucket, key), data=body, headers=headers
            ) as resp:
                assert resp.status == 200

        start = time.monotonic()
        await asyncio.gather(one("bw1"), one("bw2"))  # 120 kB shared at 200 kB/s
        upload_time = time.monotonic() - start
        start = time.monotonic()
        async with http.get(presign_get_url(client, sandbox.bucket, "bw1")) as resp:
            assert await resp.read() == body
        download_time = time.monotonic() - start
    assert upload_time >= 0.5
    assert download_time >= 0.25


async def test_short_expiry_for_all_presigns(sandbox: Sandbox) -> None:
    sandbox.set_faults(FaultPlan.model_validate({"short_expiry": {"expires_in": 1, "fraction": 1.0}}))
    async with aiohttp.ClientSession() as http:
        target = await presign(http, sandbox)
        assert target.upload.expires_in == 1 and "X-Amz-Expires=1&" in target.upload.url
        await asyncio.sleep(1.2)
        resp = await put_upload(http, target, wav_bytes(0.1))
        assert resp.status == 403
        assert s3_error_code(await resp.read()) == ("AccessDenied", "Request has expired")
    assert sandbox.stats().injected["short_expiry"] == 1


async def test_short_expiry_fraction_and_silent_report(sandbox: Sandbox) -> None:
    sandbox.set_faults(
        FaultPlan.model_validate(
            {"seed": 3, "short_expiry": {"expires_in": 5, "fraction": 0.5, "report_actual": False}}
        )
    )
    async with aiohttp.ClientSession() as http:
        targets: list[PresignResponse] = [await presign(http, sandbox) for _ in range(20)]
    short = [t for t in targets if "X-Amz-Expires=5&" in t.upload.url]
    assert 3 <= len(short) <= 17
    assert all(t.upload.expires_in == 1800 for t in targets)  # the API does not say so
    assert sandbox.stats().injected["short_expiry"] == len(short)


# --- the read-back interface itself ------------------------------------------------------------------


async def test_readback_routes_and_fault_replacement_over_http(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        new_plan = plan(get={"errors": [{"status": 502, "nth": [1]}]})
        async with http.post(sandbox.api_url + "/__sandbox__/faults", json=new_plan.model_dump()) as resp:
            assert resp.status == 200
        assert sandbox.faults() == new_plan
        async with http.post(
            sandbox.api_url + "/__sandbox__/faults", json={"operations": {"bogus": {}}}
        ) as resp:
            assert resp.status == 400
        ack = await url_create(http, sandbox, "rb1")
        assert (await body_as(ack, JobAcknowledgement)).job_id == "rb1"
        assert (await http.get(f"{sandbox.api_url}{JOBS}/rb1", headers=auth(sandbox))).status == 502
        BatchJob.model_validate(
            await (await http.get(f"{sandbox.api_url}{JOBS}/rb1", headers=auth(sandbox))).json()
        )
        async with http.get(sandbox.api_url + "/__sandbox__/stats") as resp:
            stats = SandboxStats.model_validate(await resp.json())
        assert stats == sandbox.stats()
        assert stats.requests["get"].by_status == {"502": 1, "200": 1}
        async with http.get(sandbox.api_url + "/__sandbox__/objects") as resp:
            objects = ObjectsReadback.model_validate(await resp.json())
        assert objects == sandbox.objects()
        async with http.get(sandbox.api_url + "/__sandbox__/jobs") as resp:
            jobs = JobsReadback.model_validate(await resp.json())
        assert [j.job_id for j in jobs.jobs] == ["rb1"]
    assert "__sandbox__" not in str(sandbox.stats().requests)  # read-back is never counted or faulted


def test_thread_sandbox_set_faults_and_stats(sandbox_thread: Sandbox) -> None:
    sandbox_thread.set_faults(plan(list={"errors": [{"status": 504, "nth": [1]}]}))

    async def calls() -> list[int]:
        async with aiohttp.ClientSession() as http:
            out = []
            for _ in range(2):
                async with http.get(sandbox_thread.api_url + JOBS, headers=auth(sandbox_thread)) as resp:
                    out.append(resp.status)
            return out

    assert asyncio.run(calls()) == [504, 200]
    assert sandbox_thread.stats().injected == {"status_504": 1}
    assert sandbox_thread.jobs().jobs == []


async def test_faults_from_config_at_start() -> None:
    cfg = SandboxConfig(faults=plan(create={"errors": [{"status": 500, "nth": [1]}]}))
    async with Sandbox(cfg).run() as sb, aiohttp.ClientSession() as http:
        assert (await url_create(http, sb, "c1")).status == 500
        assert (await url_create(http, sb, "c1")).status == 202


async def test_reset_waits_for_exactly_n_body_bytes(sandbox: Sandbox) -> None:
    sandbox.set_faults(plan(put={"reset": {"after_bytes": 1000, "nth": [1]}}))
    url = presign_put_url(s3_client(sandbox), sandbox.bucket, "exact")
    host, port = url.split("/")[2].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    path = "/" + url.split("/", 3)[3]
    head = f"PUT {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/octet-stream\r\n"
    writer.write((head + "Content-Length: 4000\r\n\r\n").encode() + b"a" * 999)
    await writer.drain()
    with pytest.raises(TimeoutError):  # 999 bytes in: the connection is still open
        await asyncio.wait_for(reader.read(1), 0.2)
    writer.write(b"a")
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(), 2)
    except ConnectionError:
        data = b""
    writer.close()
    assert data == b""  # dropped without any HTTP response
    assert sandbox.object_info("exact") is None
    assert sandbox.stats().requests["put"].by_status == {"reset": 1}
