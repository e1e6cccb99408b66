"""The streaming PUT of one file to a presigned S3 URL.

What S3 demands and local servers forgive (see README, "What the upload guarantees"):
- an explicit Content-Length (a chunked PUT is refused by AWS);
- exactly the signed headers from `upload.headers`, nothing aiohttp would add on its own
  (no automatic Content-Type) and never the SLNG Authorization header;
- a body read from byte 0 on every attempt (the file is reopened each call), in fixed-size
  chunks, hashed while streaming, its MD5 compared with the ETag S3 returns;
- reads and MD5 off the event loop: a read-ahead thread (storage/readahead.py) reads and hashes
  a few chunks ahead of the sender, so the loop only writes; at most a few chunks per upload in
  memory. A file that fits in one chunk is read and hashed in a single thread hop and sent as one
  buffer (the common case for call recordings: cheapest per file); the runner starts that read
  when it sends the presign (`UploadOptions.early_read`), so the PUT does not wait for the hop;
  file checks (`stat`) run on those threads too, never on the event loop.
- a file that did not change while it was read (size and mtime before and after). A file cut
  short mid-upload comes out as FileChangedError, never as the connection error aiohttp turns
  whatever the body generator raises into (that would be retried as transient).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import anyio
from aiolimiter import AsyncLimiter

from pipeline.api.client import connection_error
from pipeline.api.models import DEFAULT_CONTENT_TYPE, UploadTarget
from pipeline.errors import (
    ErrorClass,
    FileChangedError,
    StalledUploadError,
    TransferError,
    UrlRefusedError,
    classify_s3_status,
    file_read_error,
    s3_says_expired,
)
from pipeline.redact import safe_url
from pipeline.storage.presigned import exact_url
from pipeline.storage.readahead import ReadAhead, open_for_upload
from pipeline.transport.outage import storage_gate, through_gate
from pipeline.transport.retry import parse_retry_after

_S3_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_S3_MESSAGE = re.compile(rb"<Message>([^<]{1,300})</Message>")
ProgressCallback = Callable[[int], None]

T = TypeVar("T")


@dataclass(frozen=True)
class UploadOptions:
    chunk_size: int = 1024 * 1024
    # No byte taken by the connection for this long, or (all bytes handed to the socket) no answer
    # for this long: abort and retry from byte 0. Bytes sitting in socket buffers are not accepted
    # bytes, so a small file that fits in them is still watched until S3 answers.
    stall_timeout: float = 60.0
    response_timeout: float = 120.0  # after the last byte, for S3's answer
    bandwidth: AsyncLimiter | None = None  # pool-wide bytes/s cap, shared by every worker
    reads: FileReads = field(default_factory=lambda: FileReads())  # the run's file-read threads

    def early_read(self, file: ListedFile) -> EarlyRead:
        """A file read whole starts its read now (while its presign is out) for its first PUT; a
        streamed one gets an empty holder."""
        return EarlyRead(self.reads.read_whole(file) if read_whole(file.size, self) else None)


@dataclass(frozen=True, slots=True)
class ListedFile:
    """A local file as it was listed: it is sent only while it still has this size and mtime.
    Its methods block (stat, read): they run on the run's file-read threads (`FileReads`)."""

    path: Path
    size: int
    mtime_ns: int

    def ensure_unchanged(self) -> None:
        """FileChangedError if the file is gone or its size or mtime differ from the listing's."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise FileChangedError(
                f"{self.path}: file disappeared before upload finished ({exc.strerror})"
            ) from None
        if st.st_size != self.size or st.st_mtime_ns != self.mtime_ns:
            raise FileChangedError(
                f"{self.path}: file changed since it was listed (size {self.size} -> {st.st_size});"
                " it will be picked up next run"
            )

    def read_hashed(self) -> tuple[bytes, Any]:
        """The whole file (one that fits a buffer) with its MD5, checked unchanged first: one thread
        hop for the check, the read and the hash, no stat on the event loop."""
        self.ensure_unchanged()
        with open_for_upload(self.path) as stream:
            try:
                data = stream.read(self.size + 1)
            except OSError as exc:  # EIO, a stale NFS handle
                raise file_read_error(exc) from None
        if len(data) != self.size:
            raise FileChangedError(
                f"{self.path}: file changed size while it was read ({self.size} -> {len(data)} bytes)"
            )
        return data, hashlib.md5(data, usedforsecurity=False)


@dataclass(frozen=True)
class PutRequest:
    """One file's PUT to one presigned URL: the same for every attempt of it."""

    target: UploadTarget
    file: ListedFile
    options: UploadOptions
    content_type: str | None = None  # sent when the URL names no headers (older servers)
    progress: ProgressCallback | None = None  # bytes handed to the connection, as they go
    # When the URL stops being valid (time.monotonic()), as far as we know: a 403 after it is an
    # expired URL whatever S3's message says.
    url_deadline: float | None = None


@dataclass(frozen=True)
class UploadResult:
    md5: str
    bytes_sent: int
    seconds: float


def read_whole(size: int, options: UploadOptions) -> bool:
    """Whether a file of `size` bytes is read in one go and sent as one buffer (not streamed)."""
    return size <= options.chunk_size and options.bandwidth is None


class FileReads:
    """The threads that read small files whole and check files unchanged, for one run (closed
    with it). Not the loop's default executor: that one has a handful of threads and is where
    aiohttp resolves host names, so reads stuck on a hung NFS mount would stall every new
    connection. Never the event loop itself: a `stat` on a sick mount can block for seconds."""

    THREADS = 40  # as many as anyio's default thread limiter

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.THREADS, thread_name_prefix="slng-bulk file read")

    def read_whole(self, file: ListedFile) -> asyncio.Future[tuple[bytes, Any]]:
        """Start reading and hashing a file that fits one buffer; it runs from now on (an executor
        future, not anyio's to_thread: it starts without a task to await it)."""
        future = self._run(file.read_hashed)
        future.add_done_callback(_retrieved)  # a read never awaited (presign failed) logs nothing
        return future

    async def check_unchanged(self, file: ListedFile) -> None:
        """`file.ensure_unchanged()`, on one of these threads."""
        await self._run(file.ensure_unchanged)

    def _run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class EarlyRead:
    """A small file's read, begun when its presign is sent, held for its first PUT attempt only.

    Why: a thread hop waits for the GIL and a busy loop, milliseconds at a time. Begun with the
    presign, the read is done by the time the URL is back, so the PUT starts at once (the PUT step
    at c=32 on the latency bench: 62-74 -> 54-64 ms). The file is still checked unchanged (size,
    mtime) before the read and again after the PUT, so a change in between is caught as ever.
    Taken once: a retry reads the file afresh. Memory: one buffer (at most --chunk-size) per file
    holding a slot, as the PUT itself holds; dropped when the file backs off and lends its slot.
    """

    def __init__(self, read: asyncio.Future[tuple[bytes, Any]] | None = None) -> None:
        self._read = read  # None: nothing begun (a streamed file), or taken, or dropped

    def take(self) -> asyncio.Future[tuple[bytes, Any]] | None:
        read, self._read = self._read, None
        return read

    def drop(self) -> None:
        """Let the buffer go: a file backing off without its slot holds none."""
        self._read = None


def _retrieved(future: asyncio.Future[tuple[bytes, Any]]) -> None:
    if not future.cancelled():
        future.exception()


def upload_headers(target: UploadTarget, requested_content_type: str | None) -> dict[str, str]:
    """The headers the URL was signed for, verbatim; older servers omit them: send the asked type."""
    if target.headers is not None:
        return dict(target.headers)
    return {"Content-Type": requested_content_type or DEFAULT_CONTENT_TYPE}


async def put_file(
    session: aiohttp.ClientSession, request: PutRequest, early: EarlyRead | None = None
) -> UploadResult:
    """PUT `request.file` to `request.target.url`. Raises TransferError or FileChangedError.

    `early`, for a file read whole, holds its read already under way: the first attempt takes it.

    Sent past the S3 host's health gate (pipeline.transport.outage): while the host is out the PUT
    waits, and one that failed for the outage is sent again, from byte 0, once it answers.
    """

    async def attempt() -> UploadResult:
        return await _put_once(session, request, early.take() if early is not None else None)

    return await through_gate(storage_gate(session, request.target.url), attempt)


async def _put_once(
    session: aiohttp.ClientSession,
    request: PutRequest,
    early_read: asyncio.Future[tuple[bytes, Any]] | None,
) -> UploadResult:
    """One PUT of the file, read from byte 0 (or by `early_read`, begun for this attempt)."""
    target, file, options = request.target, request.file, request.options
    digest: Any = None
    sent = 0
    # What the file's reader met (cut short, unreadable), whatever aiohttp made of it.
    changed: FileChangedError | TransferError | None = None
    started = time.monotonic()
    # The stall watchdog: a cancel scope whose deadline every chunk taken pushes forward. No task
    # group, so an error from the PUT comes out as itself (never wrapped in an exception group).
    stall_scope = anyio.CancelScope(deadline=anyio.current_time() + options.stall_timeout)

    def made_progress() -> None:
        stall_scope.deadline = anyio.current_time() + options.stall_timeout

    async def body(reader: ReadAhead) -> AsyncIterator[bytes]:
        nonlocal sent, changed
        while True:
            try:
                chunk = await reader.next_chunk()
            except (FileChangedError, TransferError) as exc:
                changed = exc
                raise
            if chunk is None:
                return
            if options.bandwidth is not None:
                stall_scope.deadline = math.inf  # waiting for our own --max-bandwidth is no stall
                await _take_bandwidth(options.bandwidth, len(chunk))
                made_progress()
            sent += len(chunk)
            # Counted before the yield: S3 may answer (and put_file return) while the generator
            # still waits at its last yield, and a late callback would count bytes after the fact.
            if request.progress is not None:
                request.progress(len(chunk))
            yield chunk
            reader.taken()  # the connection took the chunk (it asks for the next one)
            made_progress()

    payload: bytes | AsyncIterator[bytes]
    reader: ReadAhead | None = None
    if read_whole(file.size, options):
        payload, digest = await (early_read or options.reads.read_whole(file))
        sent = file.size
    else:
        await options.reads.check_unchanged(file)
        reader = ReadAhead(file.path, file.size, options.chunk_size)
        digest = reader.digest
        reader.start()
        payload = body(reader)

    headers = upload_headers(target, request.content_type)
    headers["Content-Length"] = str(file.size)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=options.response_timeout)
    status, raw, retry_after, etag = 0, b"", None, None
    try:
        with stall_scope:
            try:
                async with session.put(
                    exact_url(target.url),
                    data=payload,
                    headers=headers,
                    skip_auto_headers=("Content-Type",),
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    stall_scope.deadline = math.inf  # S3 answered: from here sock_read bounds the wait
                    status = response.status
                    raw = await response.content.read(64 * 1024)
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    etag = response.headers.get("ETag")
            except (FileChangedError, TransferError):
                raise
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if changed is not None:
                    raise changed from None
                raise connection_error(f"upload to {safe_url(target.url)}", exc) from None
    finally:
        if reader is not None:
            await reader.aclose()
    if changed is not None:  # S3 answered (an error, surely) before noticing the body stopped
        raise changed
    if stall_scope.cancelled_caught:
        raise StalledUploadError(
            f"upload stalled: no progress for {options.stall_timeout:g} s"
            f" ({sent} of {file.size} bytes handed to the connection, no answer from S3)"
        )
    if not 200 <= status < 300:
        match = _S3_CODE.search(raw)
        code = match.group(1).decode("ascii", "replace") if match else None
        found = _S3_MESSAGE.search(raw)
        message = found.group(1).decode("utf-8", "replace") if found else None
        past_deadline = request.url_deadline is not None and time.monotonic() >= request.url_deadline
        if status == 403:
            expired = past_deadline or s3_says_expired(status, code, message)
            raise UrlRefusedError(
                f"upload refused by S3: HTTP 403 {code or ''}: {message or 'no message'}"
                + (" (the URL expired)" if expired else ""),
                expired=expired,
            )
        error_class = classify_s3_status(status, code, url_expired=past_deadline)
        raise TransferError(
            f"upload refused by S3: HTTP {status} {code or ''}".rstrip(),
            error_class,
            status=status,
            retry_after=retry_after,
        )
    if sent != file.size:  # S3 answered before taking the whole body: never call that a success
        raise TransferError(f"upload incomplete: {sent} of {file.size} bytes sent", ErrorClass.TRANSIENT)
    md5 = digest.hexdigest()
    returned = (etag or "").strip().strip('"').lower()
    if returned and returned != md5:
        raise TransferError(f"upload corrupted: S3 ETag {returned} != local MD5 {md5}", ErrorClass.TRANSIENT)
    # Changed while its PUT was in flight (a recorder still writing it): not this run's file.
    await options.reads.check_unchanged(file)
    return UploadResult(md5=md5, bytes_sent=sent, seconds=time.monotonic() - started)


async def _take_bandwidth(limiter: AsyncLimiter, nbytes: int) -> None:
    step = max(1, int(limiter.max_rate))
    for offset in range(0, nbytes, step):
        await limiter.acquire(min(step, nbytes - offset))
