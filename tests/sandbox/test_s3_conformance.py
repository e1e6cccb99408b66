"""Differential conformance: the sandbox's strict S3 and LocalStack give the same verdict.

Each case builds one request from a URL presigned by botocore (SigV4, path-style, exactly as the
SLNG API hands them out), sends it as raw HTTP to the sandbox S3 and to a real LocalStack S3, and
compares the verdicts:

* accepted = a 2xx answer AND afterwards the object holds exactly the bytes sent (a GET: a 2xx whose
  body is exactly the stored bytes);
* rejected = anything else (non-2xx, no answer, object absent or different).

Besides equality, every case asserts the verdict it must have on real S3, so the test cannot pass
with both servers wrong in the same way. The status and S3 error code of each side are in the
failure message (and printed, see `pytest -s`).

LocalStack is started once per session (`tests/support/localstack.py`); without it these tests
skip, or fail when SLNG_REQUIRE_LOCALSTACK=1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import botocore.auth
import pytest

from pipeline.sandbox import Sandbox, SandboxConfig
from tests.support.localstack import (
    LocalStackS3,
    localstack_s3,  # noqa: F401  (session fixture, used by name below)
    make_s3_client,
    unique_bucket_name,
)

pytestmark = [pytest.mark.localstack, pytest.mark.timeout(120)]

OCTET = "application/octet-stream"
PRESIGN_EXPIRES_S = 300
HTTP_TIMEOUT_S = 10.0
# Long enough to cross a few TCP segments, short enough to keep the test fast.
BODY_SIZE = 64 * 1024


# --------------------------------------------------------------------------------------------------
# Targets: one S3 endpoint, its credentials, and two buckets on it.


@dataclass(frozen=True)
class S3Target:
    name: str
    bucket: str
    other_bucket: str
    # botocore client used only to presign (no request goes through it); built once per target.
    client: Any = field(compare=False, repr=False)


@pytest.fixture(scope="session")
def localstack_target(localstack_s3: LocalStackS3) -> S3Target:  # noqa: F811
    bucket, other = localstack_s3.create_bucket("slng-conf"), localstack_s3.create_bucket("slng-conf-other")
    return S3Target("localstack", bucket, other, localstack_s3.client())


@pytest.fixture(scope="session")
def sandbox_target() -> Iterator[S3Target]:
    # No data_dir: the sandbox keeps its objects in a temporary directory removed when it stops.
    with Sandbox(SandboxConfig(api_port=0, s3_port=0)).run_in_thread() as sb:
        other = unique_bucket_name("slng-conf-other")
        sb.create_bucket(other)
        creds = sb.s3_credentials
        client = make_s3_client(sb.s3_url, creds.access_key, creds.secret_key, creds.region)
        yield S3Target("sandbox", sb.bucket, other, client)


# --------------------------------------------------------------------------------------------------
# What a server answered, and what is stored afterwards.


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None: the connection ended without an HTTP answer
    code: str | None  # S3 error <Code>, if any
    stored_ok: bool  # the object now holds exactly the expected bytes (GET: the body was them)

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.stored_ok

    def describe(self) -> str:
        verdict = "ACCEPT" if self.accepted else "REJECT"
        status = "no answer" if self.status is None else str(self.status)
        return f"{verdict} (status {status}, code {self.code or '-'}, object exact: {self.stored_ok})"


_CODE = re.compile(rb"<Code>([^<]*)</Code>")


def _error_code(body: bytes) -> str | None:
    match = _CODE.search(body)
    return match.group(1).decode("utf-8", "replace") if match else None


@dataclass
class Ctx:
    """Per-case helpers bound to one target and one aiohttp session."""

    target: S3Target
    client: Any
    http: aiohttp.ClientSession
    key: str
    body: bytes

    def presign_put(
        self, key: str | None = None, *, content_type: str | None = OCTET, expires: int = PRESIGN_EXPIRES_S
    ) -> str:
        params: dict[str, str] = {"Bucket": self.target.bucket, "Key": key or self.key}
        if content_type is not None:
            params["ContentType"] = content_type
        url = str(self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires))
        if content_type is not None:
            # The Content-Type cases are only meaningful if botocore signed the header.
            assert "content-type" in _query(url)["X-Amz-SignedHeaders"].split(";"), url
        return url

    def presign_get(self, key: str | None = None, *, bucket: str | None = None) -> str:
        params = {"Bucket": bucket or self.target.bucket, "Key": key or self.key}
        return str(
            self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGN_EXPIRES_S)
        )

    async def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, data: Any = None
    ) -> tuple[int, bytes]:
        # `skip_auto_headers`: aiohttp must not add a Content-Type of its own (it is a signed header).
        async with self.http.request(
            method, url, headers=headers or {}, data=data, skip_auto_headers=("Content-Type",)
        ) as resp:
            return resp.status, await resp.read()

    async def put(self, url: str, headers: dict[str, str] | None = None, data: Any = None) -> Outcome:
        status, body = await self.request("PUT", url, headers, self.body if data is None else data)
        return Outcome(status, _error_code(body), await self.holds(self.key))

    async def holds(self, key: str, *, bucket: str | None = None) -> bool:
        """Whether `key` now holds exactly `self.body` (checked with a presigned GET)."""
        status, body = await self.request("GET", self.presign_get(key, bucket=bucket))
        return status == 200 and body == self.body

    async def absent(self, key: str, *, bucket: str | None = None) -> bool:
        status, _ = await self.request("GET", self.presign_get(key, bucket=bucket))
        return status == 404


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    pairs = [(k, changes.get(k, v)) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def _tamper_signature(url: str) -> str:
    """Flip the last hex digit of X-Amz-Signature: same length, still hex, wrong."""
    sig = _query(url)["X-Amz-Signature"]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    return _with_query(url, **{"X-Amz-Signature": flipped})


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


# --------------------------------------------------------------------------------------------------
# The cases. Each returns the Outcome for one target; `@case` registers it with its verdict.

CaseRun = Callable[[Ctx], Awaitable[Outcome]]


@dataclass(frozen=True)
class Case:
    name: str
    run: CaseRun
    accept: bool  # the verdict real S3 gives


CASES: list[Case] = []


def case(*, accept: bool) -> Callable[[CaseRun], CaseRun]:
    """Register the function as a case named after it (less its `case_` prefix), in file order."""

    def register(run: CaseRun) -> CaseRun:
        CASES.append(Case(run.__name__.removeprefix("case_"), run, accept))
        return run

    return register


@case(accept=True)
async def case_put_valid(c: Ctx) -> Outcome:
    return await c.put(c.presign_put(), {"Content-Type": OCTET})


@case(accept=False)
async def case_put_tampered_signature(c: Ctx) -> Outcome:
    return await c.put(_tamper_signature(c.presign_put()), {"Content-Type": OCTET})


@case(accept=False)
async def case_put_other_key(c: Ctx) -> Outcome:
    # A URL signed for `<key>.signed` used to write `<key>`.
    url = c.presign_put(c.key + ".signed")
    outcome = await c.put(_with_path(url, f"/{c.target.bucket}/{c.key}"), {"Content-Type": OCTET})
    assert await c.absent(c.key + ".signed")
    return outcome


@case(accept=False)
async def case_put_other_bucket(c: Ctx) -> Outcome:
    # A URL signed for the main bucket used to write the same key in another existing bucket.
    url = _with_path(c.presign_put(), f"/{c.target.other_bucket}/{c.key}")
    status, body = await c.request("PUT", url, {"Content-Type": OCTET}, c.body)
    stored = await c.holds(c.key, bucket=c.target.other_bucket)
    assert await c.absent(c.key)
    return Outcome(status, _error_code(body), stored)


@case(accept=False)
async def case_put_wrong_content_type(c: Ctx) -> Outcome:
    return await c.put(c.presign_put(), {"Content-Type": "audio/wav"})


@case(accept=False)
async def case_put_missing_content_type(c: Ctx) -> Outcome:
    return await c.put(c.presign_put(), {})


@case(accept=False)
async def case_put_expired(c: Ctx) -> Outcome:
    # Sign as if an hour ago, valid for 60 s: expired by 59 minutes, no sleeping needed. botocore's
    # SigV4 signers take "now" from botocore.auth.get_current_datetime; if that ever changes, the
    # URL's X-Amz-Date shows it and we fall back to a 1 s URL and a 2 s wait.
    past = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=1)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=past, create=True):
        url = c.presign_put(expires=60)
    if _query(url)["X-Amz-Date"] != past.strftime("%Y%m%dT%H%M%SZ"):
        url = c.presign_put(expires=1)
        await asyncio.sleep(2.1)
    return await c.put(url, {"Content-Type": OCTET})


@case(accept=False)
async def case_put_unsigned_amz_meta(c: Ctx) -> Outcome:
    return await c.put(c.presign_put(), {"Content-Type": OCTET, "x-amz-meta-foo": "bar"})


@case(accept=False)
async def case_put_wrong_content_md5(c: Ctx) -> Outcome:
    # Well-formed (base64 of 16 bytes) but the digest of other data.
    return await c.put(c.presign_put(), {"Content-Type": OCTET, "Content-MD5": _md5_b64(b"other bytes")})


@case(accept=False)
async def case_put_malformed_content_md5(c: Ctx) -> Outcome:
    return await c.put(c.presign_put(), {"Content-Type": OCTET, "Content-MD5": "not-an-md5!"})


@case(accept=False)
async def case_put_truncated_body(c: Ctx) -> Outcome:
    # Declare the full length, send half, then close: a client dying mid-upload. aiohttp cannot send a
    # short body, so this goes over a raw socket.
    url = urlsplit(c.presign_put())
    assert url.hostname is not None and url.port is not None
    head = (
        f"PUT {url.path}?{url.query} HTTP/1.1\r\n"
        f"Host: {url.netloc}\r\n"
        f"Content-Type: {OCTET}\r\n"
        f"Content-Length: {len(c.body)}\r\n"
        "\r\n"
    ).encode("ascii")
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head + c.body[: len(c.body) // 2])
        await writer.drain()
        try:  # a server may answer before the body ends; most just wait for the rest
            answer = await asyncio.wait_for(reader.read(4096), timeout=0.3)
        except TimeoutError:
            answer = b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    # Give the server a moment to notice the disconnect before looking at what it stored.
    await asyncio.sleep(0.3)
    stored = await c.holds(c.key)
    return Outcome(int(match.group(1)) if match else None, _error_code(answer), stored)


async def _seed(c: Ctx) -> None:
    status, body = await c.request("PUT", c.presign_put(), {"Content-Type": OCTET}, c.body)
    assert status == 200, f"seeding {c.key} on {c.target.name}: {status} {body[:300]!r}"


@case(accept=True)
async def case_get_valid(c: Ctx) -> Outcome:
    await _seed(c)
    status, body = await c.request("GET", c.presign_get())
    return Outcome(status, _error_code(body), status == 200 and body == c.body)


@case(accept=False)
async def case_get_tampered_signature(c: Ctx) -> Outcome:
    await _seed(c)
    status, body = await c.request("GET", _tamper_signature(c.presign_get()))
    return Outcome(status, _error_code(body), status == 200 and body == c.body)


def _body_for(case_name: str) -> bytes:
    seed = hashlib.sha256(case_name.encode()).digest()
    return (seed * (BODY_SIZE // len(seed) + 1))[:BODY_SIZE]


async def _run_case(case: Case, target: S3Target) -> Outcome:
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    # force_close: no pooled connection, so aiohttp never silently re-sends a PUT on a stale one.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as http:
        key = f"conformance/{case.name}/{uuid.uuid4().hex}.bin"
        return await case.run(Ctx(target, target.client, http, key, _body_for(case.name)))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_sandbox_s3_gives_localstack_verdict(
    case: Case, localstack_target: S3Target, sandbox_target: S3Target
) -> None:
    on_localstack = asyncio.run(_run_case(case, localstack_target))
    on_sandbox = asyncio.run(_run_case(case, sandbox_target))
    expected = "ACCEPT" if case.accept else "REJECT"
    report = (
        f"{case.name}: expected {expected}\n"
        f"  localstack: {on_localstack.describe()}\n"
        f"  sandbox:    {on_sandbox.describe()}"
    )
    print(report)
    problems = []
    if on_sandbox.accepted != on_localstack.accepted:
        problems.append("the sandbox and LocalStack disagree")
    if on_localstack.accepted != case.accept:
        problems.append(f"LocalStack does not {expected}")
    if on_sandbox.accepted != case.accept:
        problems.append(f"the sandbox does not {expected}")
    assert not problems, "; ".join(problems) + "\n" + report


def test_sandbox_refuses_chunked_put(sandbox_target: S3Target) -> None:
    """A PUT without Content-Length (Transfer-Encoding: chunked) gets AWS's 501 NotImplemented.

    Not a differential case on purpose: LocalStack 2026.3.0 *accepts* a chunked presigned PUT
    (observed: 200 and the object stored), as every local S3 server tried does, while AWS refuses
    it. The sandbox is deliberately stricter than LocalStack here, so that a client which streams
    without a Content-Length fails in tests instead of in production.
    """

    async def chunked(c: Ctx) -> Outcome:
        async def stream() -> AsyncIterator[bytes]:
            # An async generator body: aiohttp sends it chunked when no Content-Length is given.
            for start in range(0, len(c.body), 16 * 1024):
                yield c.body[start : start + 16 * 1024]

        return await c.put(c.presign_put(), {"Content-Type": OCTET}, stream())

    outcome = asyncio.run(_run_case(Case("put_chunked", chunked, False), sandbox_target))
    assert (outcome.status, outcome.code) == (501, "NotImplemented"), outcome.describe()
    assert not outcome.stored_ok, outcome.describe()
