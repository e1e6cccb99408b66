"""The sandbox's strict S3 endpoint (path-style, presigned SigV4 only).

Strict on purpose: local S3 servers that accept chunked PUTs, unsigned headers or expired URLs let
client bugs through to production. Checks run in the order AWS fronts them: HTTP framing (chunked,
Content-Length, Content-MD5 syntax), then the signature (see `signing.verify_presigned`), then the
bucket and key. Bodies stream to a temp file with a running MD5 and are renamed into place only when
complete and matching.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Callable
from email.utils import formatdate
from urllib.parse import unquote

import aiofiles
import anyio
from aiohttp import web

from pipeline.sandbox.config import S3Credentials
from pipeline.sandbox.fault_middleware import DECISION_KEY, abort_connection, make_fault_middleware
from pipeline.sandbox.injector import BandwidthLimiter, FaultInjector
from pipeline.sandbox.local_store import LocalObjectStore
from pipeline.sandbox.request_stats import StatsRecorder
from pipeline.sandbox.s3_errors import injected_s3_error, s3_error
from pipeline.sandbox.signing import SignatureProblem, verify_presigned

CHUNK = 64 * 1024
_INCOMPLETE = "You did not provide the number of bytes specified by the Content-Length HTTP header"


class S3Server:
    """Request handlers over a `LocalObjectStore`; `app()` builds the aiohttp application."""

    def __init__(
        self,
        store: LocalObjectStore,
        creds: S3Credentials,
        injector: FaultInjector,
        stats: StatsRecorder,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.creds = creds
        self.injector = injector
        self.stats = stats
        self.clock = clock

    def app(self) -> web.Application:
        middleware = make_fault_middleware(self.injector, self.stats, self._classify, injected_s3_error)
        app = web.Application(middlewares=[middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def _classify(self, request: web.Request) -> str | None:
        return {"PUT": "put", "GET": "download", "HEAD": "download"}.get(request.method)

    @property
    def _bandwidth(self) -> BandwidthLimiter | None:
        return self.injector.bandwidth

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw_path, _, raw_query = request.raw_path.partition("?")
        head = request.method == "HEAD"
        bucket, _, raw_key = raw_path.lstrip("/").partition("/")
        bucket, key = unquote(bucket), unquote(raw_key)
        if request.method not in ("PUT", "GET", "HEAD"):
            return s3_error(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
                raw_path,
            )
        if request.method == "PUT":
            framing = self._check_put_framing(request, raw_path)
            if framing is not None:
                return framing
        problem = verify_presigned(
            request.method, request.host, raw_path, raw_query, request.headers, self.creds, self.clock()
        )
        decision = request.get(DECISION_KEY)
        if problem is None and decision is not None and decision.signature_mismatch:
            self.stats.injected(decision.op, "signature_mismatch")
            problem = SignatureProblem(
                403, "SignatureDoesNotMatch", "The request signature we calculated does not match"
            )
        if problem is not None:
            return s3_error(problem.status, problem.code, problem.message, raw_path, head=head)
        if not bucket or not self.store.has_bucket(bucket):
            return s3_error(404, "NoSuchBucket", "The specified bucket does not exist", raw_path, head=head)
        if not key:
            return s3_error(400, "InvalidRequest", "Bucket operations are not supported here.", raw_path)
        if request.method == "PUT":
            return await self._put(request, bucket, key, raw_path)
        return await self._get(request, bucket, key, raw_path, head)

    def _check_put_framing(self, request: web.Request, resource: str) -> web.Response | None:
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            return s3_error(
                501,
                "NotImplemented",
                "A header you provided implies functionality that is not implemented",
                resource,
            )
        if request.headers.get("Content-Length") is None:
            return s3_error(
                411, "MissingContentLength", "You must provide the Content-Length HTTP header.", resource
            )
        md5_header = request.headers.get("Content-MD5")
        if md5_header is not None and _decode_md5(md5_header) is None:
            return s3_error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.", resource)
        return None

    async def _put(self, request: web.Request, bucket: str, key: str, resource: str) -> web.StreamResponse:
        declared = request.content_length or 0
        expected_md5 = _decode_md5(request.headers.get("Content-MD5", ""))
        temp = self.store.new_temp_path()
        digest = hashlib.md5()
        received = 0
        try:
            async with aiofiles.open(temp, "wb") as fh:
                while received < declared:
                    chunk = await request.content.read(min(CHUNK, declared - received))
                    if not chunk:
                        break
                    if self._bandwidth is not None:
                        await self._bandwidth.consume(len(chunk))
                    digest.update(chunk)
                    received += len(chunk)
                    await fh.write(chunk)
            if received != declared:
                return s3_error(400, "IncompleteBody", _INCOMPLETE, resource)
            if expected_md5 is not None and expected_md5 != digest.digest():
                return s3_error(
                    400,
                    "BadDigest",
                    "The Content-MD5 you specified did not match what we received.",
                    resource,
                )
            content_type = request.headers.get("Content-Type", "binary/octet-stream")
            info = self.store.commit(bucket, key, temp, digest.hexdigest(), received, content_type)
        finally:
            await anyio.Path(temp).unlink(missing_ok=True)  # a no-op once committed (renamed away)
        return web.Response(status=200, headers={"ETag": f'"{info.md5}"'})

    async def _get(
        self, request: web.Request, bucket: str, key: str, resource: str, head: bool
    ) -> web.StreamResponse:
        info = self.store.info(bucket, key)
        path = self.store.path(bucket, key)
        if info is None or path is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.", resource, head=head)
        decision = request.get(DECISION_KEY)
        if decision is not None and decision.lose_response:
            abort_connection(request)  # lost_response on a download: nothing is sent
            return web.Response()
        mtime = path.stat().st_mtime
        response = web.StreamResponse(
            status=200,
            headers={
                "ETag": f'"{info.md5}"',
                "Content-Type": info.content_type,
                "Last-Modified": formatdate(mtime, usegmt=True),
                "Accept-Ranges": "bytes",
            },
        )
        response.content_length = info.size
        await response.prepare(request)
        if head:
            return response
        async with aiofiles.open(path, "rb") as fh:
            while chunk := await fh.read(CHUNK):
                if self._bandwidth is not None:
                    await self._bandwidth.consume(len(chunk))
                await response.write(chunk)
        await response.write_eof()
        return response


def _decode_md5(value: str) -> bytes | None:
    """The 16 digest bytes of a Content-MD5 header, or None if it is not valid base64 of 16 bytes."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 16 else None
