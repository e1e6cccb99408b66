"""`python -m tests.bench.lean_server [--latency-ms MS]`: the three presign-flow requests, served cheaply.

Why it exists: on a 2-core machine the sandbox (pydantic models, SigV4 checks with botocore, audio
sniffing, state bookkeeping) spends 3-5 ms of CPU per file, more than the client, so a run against
it measures the two processes together. This server answers the same three requests with the same
wire shapes (presign step 1, a PUT with Content-Length whose ETag is the body's MD5, presign step 3,
and GET of a job for the client's "did my create land?" check) and does as little as possible
besides: a hand-rolled HTTP/1.1 parser over `asyncio.Protocol` (uvloop when installed), bodies
hashed and dropped, no signature checks. What it still refuses is what would make a client look
faster than it is: a PUT without Content-Length (411) or chunked (501), a PUT or create for a key
never presigned (400/403), a second create of a job_id (409), a missing bearer key (403).

`--latency-ms` delays every answer (presign, PUT, create) by that much, like the sandbox's fixed
latency fault: the response is scheduled with `call_later`, so waiting costs no CPU here.
`GET /__lean__/stats` returns the request counts, jobs created and duplicates refused.
Prints `LEAN API: http://127.0.0.1:PORT` when ready; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
import socket
from collections import Counter
from typing import Any, cast
from urllib.parse import unquote

JOBS_PATH = b"/v1/batch/jobs"
BUCKET = "lean-bench"
_REASONS = {
    200: b"OK",
    202: b"Accepted",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    409: b"Conflict",
    411: b"Length Required",
    501: b"Not Implemented",
}


class State:
    """What the three steps need to check each other: keys presigned, objects stored, jobs made."""

    def __init__(self, base_url: str, latency_s: float) -> None:
        self.base_url = base_url
        self.latency_s = latency_s
        self.presigned: dict[str, str] = {}  # s3 key -> job_id
        self.objects: dict[str, int] = {}  # s3 key -> size
        self.jobs: set[str] = set()
        self.requests: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()


def _response(
    status: int, body: bytes, extra: bytes = b"", content_type: bytes = b"application/json"
) -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
        % (status, _REASONS.get(status, b"OK"), content_type, len(body), extra)
        + body
    )


def _error(status: int, message: str) -> bytes:
    return _response(status, json.dumps({"error": message}).encode())


class LeanProtocol(asyncio.Protocol):
    """One keep-alive connection: requests parsed in order, each answered after the latency."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.refusing = False  # a framing error was answered: the connection is closing
        self._reset()

    def _reset(self) -> None:
        self.head: tuple[bytes, bytes, dict[bytes, bytes]] | None = None
        self.left = 0  # body bytes still to come
        self.body = bytearray()
        self.md5: Any = None  # a PUT body is hashed as it arrives, never kept

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.refusing:
            return
        if self.head is not None and self.md5 is not None and not self.buffer:
            take = min(len(data), self.left)  # the large-PUT fast path: hash straight from the read
            self.md5.update(memoryview(data)[:take])
            self.left -= take
            if self.left == 0:
                self._finish()
            if take == len(data):
                return
            data = data[take:]
        self.buffer += data
        self._parse()

    def _parse(self) -> None:
        while True:
            if self.head is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = bytes(self.buffer[:end]).split(b"\r\n")
                del self.buffer[: end + 4]
                method, target, _ = lines[0].split(b" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                self.head = (method, target, headers)
                if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                    self._refuse(_error(501, "chunked uploads are not supported"))
                    return
                if method == b"PUT" and b"content-length" not in headers:
                    self._refuse(_error(411, "Content-Length required"))
                    return
                self.left = int(headers.get(b"content-length", b"0"))
                if method == b"PUT":
                    self.md5 = hashlib.md5(usedforsecurity=False)
                if headers.get(b"expect", b"").lower() == b"100-continue" and self.transport is not None:
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            take = min(len(self.buffer), self.left)
            if take:
                if self.md5 is not None:
                    self.md5.update(self.buffer[:take])
                else:
                    self.body += self.buffer[:take]
                del self.buffer[:take]
                self.left -= take
            if self.left:
                return
            self._finish()
            if not self.buffer:
                return

    def _refuse(self, answer: bytes) -> None:
        self.refusing = True
        self.buffer.clear()
        self._reset()
        self._answer(answer, close=True)

    def _finish(self) -> None:
        assert self.head is not None
        method, target, headers = self.head
        try:
            answer = self._route(method, target, headers)
        except (ValueError, KeyError, TypeError) as exc:
            answer = _error(400, f"bad request: {type(exc).__name__}")
        self._reset()
        self._answer(answer)

    def _answer(self, payload: bytes, close: bool = False) -> None:
        transport = self.transport
        if transport is None:
            return

        def send() -> None:
            if not transport.is_closing():
                transport.write(payload)
                if close:
                    transport.close()

        if self.state.latency_s > 0:
            self.loop.call_later(self.state.latency_s, send)
        else:
            send()

    def _route(self, method: bytes, target: bytes, headers: dict[bytes, bytes]) -> bytes:
        path, _, _query = target.partition(b"?")
        st = self.state
        if method == b"PUT" and path.startswith(b"/" + BUCKET.encode() + b"/"):
            st.requests["put"] += 1
            key = unquote(path[len(BUCKET) + 2 :].decode())
            if key not in st.presigned:
                st.refused["put_unknown_key"] += 1
                return _response(
                    403, b"<Error><Code>AccessDenied</Code></Error>", content_type=b"application/xml"
                )
            digest = self.md5.hexdigest()
            st.objects[key] = int(headers[b"content-length"])
            return _response(200, b"", b'ETag: "%s"\r\n' % digest.encode())
        if path == b"/__lean__/stats":
            stats = {
                "requests": dict(st.requests),
                "refused": dict(st.refused),
                "jobs": len(st.jobs),
                "objects": len(st.objects),
            }
            return _response(200, json.dumps(stats).encode())
        if not headers.get(b"authorization", b"").startswith(b"Bearer "):
            return _error(403, "missing API key")
        if method == b"POST" and path == JOBS_PATH:
            body = json.loads(self.body)
            if body.get("mode") == "presign":
                return self._presign(body)
            return self._create(body)
        if method == b"GET" and path.startswith(JOBS_PATH + b"/"):
            st.requests["get"] += 1
            job_id = path[len(JOBS_PATH) + 1 :].decode()
            if job_id not in st.jobs:
                return _error(404, "Job not found")
            return _response(200, json.dumps({"job_id": job_id, "status": "QUEUED"}).encode())
        return _error(404, "no such route")

    def _presign(self, body: dict[str, Any]) -> bytes:
        st = self.state
        st.requests["presign"] += 1
        job_id, filename = body["job_id"], body["filename"]
        if job_id in st.jobs:
            return _error(409, "Job already exists")
        key = f"inputs/{job_id}/{filename}"
        st.presigned[key] = job_id
        answer = {
            "job_id": job_id,
            "transcription_config": body.get("transcription_config") or {},
            "upload": {
                "url": f"{st.base_url}/{BUCKET}/{key}?X-Amz-Signature=lean",
                "s3_key": key,
                "s3_uri": f"s3://{BUCKET}/{key}",
                "expires_in": 1800,
                "headers": {"Content-Type": "application/octet-stream"},
            },
        }
        return _response(200, json.dumps(answer).encode())

    def _create(self, body: dict[str, Any]) -> bytes:
        st = self.state
        st.requests["create"] += 1
        key, job_id = body["s3_key"], body["job_id"]
        if st.presigned.get(key) != job_id or key not in st.objects:
            st.refused["create_not_uploaded"] += 1
            return _error(400, "No uploaded object found at s3_key")
        if job_id in st.jobs:
            st.refused["create_duplicate"] += 1
            return _error(409, "Job already exists")
        st.jobs.add(job_id)
        return _response(202, json.dumps({"job_id": job_id, "status": "QUEUED"}).encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(latency_ms: float, port: int) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    state = State(base, latency_ms / 1000)
    server = await loop.create_server(lambda: LeanProtocol(state), sock=sock, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"LEAN API: {base}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.lean_server", description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.latency_ms, args.port))
    else:
        uvloop.run(serve(args.latency_ms, args.port))


if __name__ == "__main__":
    main()
