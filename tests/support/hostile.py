"""A small hostile SLNG API + S3 on 127.0.0.1, for tests that the client survives bad servers.

One aiohttp.web app on a free loopback port serves, by default, a minimal *honest* Batch API
(presign → PUT → create → GET) so a whole `slng-bulk submit` can run against it; each operation
can instead be told to misbehave:

==================  ============================================================================
behaviour           what the server does
==================  ============================================================================
``ok``              answer correctly
``not_json``        200 with an HTML body
``wrong_shape``     200 with JSON of the wrong shape (a list; a job_id that is a number)
``deep_json``       200 with JSON nested 100 000 levels deep (under the size cap)
``huge``            200 with a 5 MiB body and no Content-Length (chunked): over the 4 MiB cap
``huge_declared``   200 declaring Content-Length 6 GiB, then a trickle
``redirect301``     301/302/307/308 to ``/catch/...`` on the same server (the catcher records
``redirect302``     every request it gets, so a test can prove nobody followed, and no bearer key
``redirect307``     travelled); the catcher itself answers 200 with a plausible body
``redirect308``
``hang``            accept the request and never answer
``slow_loris``      200 headers at once, then one byte of body every 0.2 s, for ever
``echo_secrets``    400 with an ``{"error": ...}`` that repeats the Authorization header and the
                    full signed upload URL it issued (the client must redact both)
``status_500``      500 with an HTML body
``reset``           (put only) read 1 KiB of the body, then abort the TCP connection
``insecure_upload`` (presign only) an upload URL ``http://example.com/...``: plain http, not loopback
``ftp_upload``      (presign only) an upload URL ``ftp://127.0.0.1/...``
==================  ============================================================================

The follow-up endpoints have modes of their own (a server that is odd, not broken):

- ``job_status``: the status the honest ``get`` and ``listing`` report (default ``QUEUED``;
  ``"done"`` or ``"Done"`` for a server that does not shout).
- ``listing`` (the job list): ``ok`` (items and ``meta``), ``no_meta`` (items only, paged, an
  empty page past the end), ``no_meta_same_page`` (items only, the first page whatever ``page``
  asks for).
- ``files``: ``ok`` (json, txt, srt), ``upper_formats`` (``JSON``, ``Txt``, ``SRT``), ``no_srt``,
  ``evil_formats`` (two outputs whose format and key try to climb out of the output folder, first).
- a GET of a transcript URL answers ``transcript <key>``.

`put` answers with S3-ish XML errors; its ``ok`` checks Content-Length and returns the MD5 ETag.
Every request is recorded in ``server.seen`` (method, path, query, headers). Use it with
``with HostileServer(presign="not_json").run_in_thread() as server:`` (own thread and loop: fine
for subprocess tests and for async tests, which reach it over the network like any server).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

SIGNATURE: Final = "f" * 24 + uuid.uuid4().hex + "e" * 8  # 64 characters, unique per test session
CREDENTIAL: Final = "AKIAHOSTILE0000000000%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
HUGE_BYTES: Final = 5 * 1024 * 1024

API_OPERATIONS: Final = ("presign", "create", "get")
FILES_FORMATS: Final = {
    "ok": ("json", "txt", "srt"),
    "upper_formats": ("JSON", "Txt", "SRT"),
    "no_srt": ("json", "txt"),
    "evil_formats": ("json", "txt", "srt"),
}
REDIRECTS: Final = {"redirect301": 301, "redirect302": 302, "redirect307": 307, "redirect308": 308}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class HostileServer:
    presign: str = "ok"
    create: str = "ok"
    get: str = "ok"
    put: str = "ok"
    job_status: str = "QUEUED"
    listing: str = "ok"
    files: str = "ok"
    api_key: str = "sk-hostile-test-key"
    seen: list[Seen] = field(default_factory=list)
    base_url: str = ""
    created: set[str] = field(default_factory=set)
    _stop: asyncio.Event | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- read-back ----------------------------------------------------------------------------

    def requests_to(self, prefix: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path.startswith(prefix)]

    @property
    def caught(self) -> list[Seen]:
        """Requests that reached the redirect target: any one of them is a followed redirect."""
        return self.requests_to("/catch")

    def upload_url(self, key: str) -> str:
        return (
            f"{self.base_url}/s3/bucket/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={CREDENTIAL}&X-Amz-Date=20260101T000000Z&X-Amz-Expires=1800"
            f"&X-Amz-SignedHeaders=content-type%3Bhost&X-Amz-Signature={SIGNATURE}"
        )

    def download_url(self, key: str) -> str:
        return (
            f"{self.base_url}/s3/bucket/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={CREDENTIAL}&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600"
            f"&X-Amz-SignedHeaders=host&X-Amz-Signature={SIGNATURE}"
        )

    # --- the app --------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record], client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/batch/jobs", self._jobs_post)
        app.router.add_get("/v1/batch/jobs", self._list)
        app.router.add_get("/v1/batch/jobs/{job_id}", self._job_get)
        app.router.add_get("/v1/batch/jobs/{job_id}/files", self._files)
        app.router.add_put("/s3/{tail:.*}", self._put)
        app.router.add_get("/s3/{tail:.*}", self._download)
        app.router.add_route("*", "/catch/{tail:.*}", self._catch)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        with self._lock:
            self.seen.append(Seen(request.method, request.path, request.query_string, dict(request.headers)))
        response: web.StreamResponse = await handler(request)
        return response

    async def _jobs_post(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("mode") == "presign":
            return await self._presign(request, body)
        return await self._create(request, body)

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _presign(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if not self._authorised(request):
            return web.json_response({"error": "API key id not found"}, status=403)
        job_id = body.get("job_id") or "job" + uuid.uuid4().hex
        key = f"inputs/{job_id}/{body.get('filename', 'f.wav')}"
        url = self.upload_url(key)
        if self.presign == "insecure_upload":
            url = "http://example.com" + url[len(self.base_url) :]
        elif self.presign == "ftp_upload":
            url = "ftp://127.0.0.1" + url[len(self.base_url) :]
        answer = {
            "job_id": job_id,
            "upload": {
                "url": url,
                "s3_key": key,
                "expires_in": 1800,
                "headers": {"Content-Type": "application/octet-stream"},
            },
        }
        if self.presign in ("insecure_upload", "ftp_upload"):
            return web.json_response(answer)
        return await self._behave(request, self.presign, answer)

    async def _create(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if not self._authorised(request):
            return web.json_response({"error": "API key id not found"}, status=403)
        job_id = str(body.get("job_id") or "job" + uuid.uuid4().hex)
        if self.create == "ok":
            if job_id in self.created:
                return web.json_response({"error": "Job already exists"}, status=409)
            self.created.add(job_id)
        return await self._behave(request, self.create, {"job_id": job_id, "status": "QUEUED"})

    async def _job_get(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.json_response({"error": "API key id not found"}, status=403)
        job_id = request.match_info["job_id"]
        if self.get == "ok":
            if job_id not in self.created:
                return web.json_response({"error": "Job not found"}, status=404)
            return web.json_response({"job_id": job_id, "status": self.job_status})
        return await self._behave(request, self.get, {"job_id": job_id, "status": "QUEUED"})

    async def _list(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.json_response({"error": "API key id not found"}, status=403)
        page = 1 if self.listing == "no_meta_same_page" else int(request.query.get("page", "1"))
        size = int(request.query.get("page_size", "100"))
        jobs = sorted(self.created)
        items = [{"job_id": j, "status": self.job_status} for j in jobs[(page - 1) * size : page * size]]
        if self.listing == "ok":
            meta = {"page": page, "page_size": size, "total": len(jobs), "pages": -(-len(jobs) // size)}
            return web.json_response({"items": items, "meta": meta})
        if self.listing in ("no_meta", "no_meta_same_page"):
            return web.json_response({"items": items})
        raise AssertionError(f"unknown list mode {self.listing!r}")

    async def _files(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.json_response({"error": "API key id not found"}, status=403)
        job_id = request.match_info["job_id"]
        if job_id not in self.created:
            return web.json_response({"error": "Job not found"}, status=404)
        formats = FILES_FORMATS[self.files]
        outputs = []
        if self.files == "evil_formats":  # names that climb out; their URLs serve a real transcript
            url = self.download_url(f"outputs/{job_id}/transcript.json")
            for fmt, key in (("../../evil", "../../../evil.json"), ("/tmp/evil", "/etc/evil")):
                outputs.append({"format": fmt, "key": key, "download_url": url})
        for fmt in formats:
            key = f"outputs/{job_id}/transcript.{fmt.lower()}"
            outputs.append({"format": fmt, "key": key, "download_url": self.download_url(key)})
        return web.json_response({"job_id": job_id, "inputs": [], "outputs": outputs})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["tail"].partition("/")[2]
        return web.Response(text=f"transcript {key}\n", content_type="application/octet-stream")

    async def _put(self, request: web.Request) -> web.StreamResponse:
        if self.put == "hang":
            return await self._hang()
        if self.put == "reset":  # read a little, then drop the connection without an answer
            await request.content.read(1024)
            assert request.transport is not None
            request.transport.abort()
            return await self._hang()
        if self.put in REDIRECTS:
            raise _redirect(REDIRECTS[self.put], f"{self.base_url}/catch/s3")
        if request.headers.get("Authorization"):
            return _s3_error(400, "InvalidArgument", "an Authorization header on a presigned PUT")
        if request.headers.get("Transfer-Encoding", "").lower() == "chunked" or not request.content_length:
            return _s3_error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        digest = hashlib.md5(usedforsecurity=False)
        async for chunk in request.content.iter_any():
            digest.update(chunk)
        if self.put == "status_500":
            return _s3_error(500, "InternalError", "We encountered an internal error.")
        if self.put == "echo_secrets":
            return _s3_error(
                403,
                "SignatureDoesNotMatch",
                f"url {request.url} <SignatureProvided>{SIGNATURE}</SignatureProvided>",
            )
        if self.put == "slow_loris":
            return await self._slow_loris(request)
        return web.Response(status=200, headers={"ETag": f'"{digest.hexdigest()}"'})

    async def _catch(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        # A plausible answer: a client that followed the redirect would believe it.
        return web.json_response(
            {
                "job_id": "caught",
                "status": "QUEUED",
                "upload": {"url": self.upload_url("inputs/caught/x.wav"), "s3_key": "inputs/caught/x.wav"},
            },
            headers={"ETag": '"0"'},
        )

    # --- behaviours -------------------------------------------------------------------------------

    async def _behave(self, request: web.Request, behaviour: str, good: Any) -> web.StreamResponse:
        if behaviour == "ok":
            return web.json_response(good)
        if behaviour == "not_json":
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        if behaviour == "wrong_shape":
            payload: Any = [1, 2, 3] if "upload" in good else {"job_id": 12345, "status": None}
            return web.json_response(payload)
        if behaviour == "deep_json":
            depth = 100_000
            return web.Response(body=b"[" * depth + b"]" * depth, content_type="application/json")
        if behaviour == "huge":
            return await self._huge(request)
        if behaviour == "huge_declared":
            return await self._huge_declared(request)
        if behaviour in REDIRECTS:
            raise _redirect(REDIRECTS[behaviour], f"{self.base_url}/catch/api")
        if behaviour == "hang":
            return await self._hang()
        if behaviour == "slow_loris":
            return await self._slow_loris(request)
        if behaviour == "echo_secrets":
            leak = f"{request.headers.get('Authorization')} {self.upload_url('inputs/x/y.wav')}"
            return web.json_response({"error": f"refused: {leak}"}, status=400)
        if behaviour == "status_500":
            return web.Response(
                status=500, text="<html>Internal Server Error</html>", content_type="text/html"
            )
        raise AssertionError(f"unknown behaviour {behaviour!r}")

    async def _hang(self) -> web.StreamResponse:
        assert self._stop is not None
        await self._stop.wait()  # until the server stops: the client must give up first
        return web.Response(status=599)

    async def _slow_loris(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        assert self._stop is not None
        await response.write(b'{"job_id": "')
        while not self._stop.is_set():
            await response.write(b"a")
            await asyncio.sleep(0.2)
        return response

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b'{"job_id": "')
        block = b"a" * 65536
        for _ in range(HUGE_BYTES // len(block)):
            await response.write(block)
        await response.write(b'", "status": "QUEUED"}')
        await response.write_eof()
        return response

    async def _huge_declared(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "application/json", "Content-Length": str(6 << 30)}
        )
        await response.prepare(request)
        assert self._stop is not None
        while not self._stop.is_set():
            await response.write(b"a" * 1024)
            await asyncio.sleep(0.05)
        return response

    # --- running ----------------------------------------------------------------------------------

    @contextmanager
    def run_in_thread(self) -> Iterator[HostileServer]:
        """Serve on 127.0.0.1 (free port) from a private thread and loop; stopped on exit."""
        ready = threading.Event()
        failure: list[BaseException] = []
        holder: dict[str, asyncio.AbstractEventLoop] = {}

        async def main() -> None:
            self._stop = asyncio.Event()
            holder["loop"] = asyncio.get_running_loop()
            runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
            try:
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
                self.base_url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
                ready.set()
                await self._stop.wait()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
            finally:
                await runner.cleanup()

        thread = threading.Thread(target=lambda: asyncio.run(main()), name="hostile-server", daemon=True)
        thread.start()
        if not ready.wait(timeout=30):
            raise TimeoutError("the hostile server did not start within 30 s")
        if failure:
            raise failure[0]
        try:
            yield self
        finally:
            loop, stop = holder["loop"], self._stop
            assert stop is not None
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=30)


def _redirect(status: int, location: str) -> web.HTTPException:
    classes: dict[int, type[web.HTTPException]] = {
        301: web.HTTPMovedPermanently,
        302: web.HTTPFound,
        307: web.HTTPTemporaryRedirect,
        308: web.HTTPPermanentRedirect,
    }
    exc_class: Any = classes[status]
    exception: web.HTTPException = exc_class(location=location)
    return exception


def _s3_error(status: int, code: str, message: str) -> web.Response:
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")
