"""Mode B as the real service does it: download `input_url` in the background, then decode it.

The create answers 202 at once; the job stays QUEUED while the URL is fetched (streamed to a temp
file, at most `max_upload_bytes`), then its steps start from the moment the input arrived. A URL
that answers an error, cannot be reached, is too large or holds no audio ends the job FAILED with
a one-line message that never repeats the URL (presigned URLs carry their signature in the query).
The URL is requested byte for byte as the client sent it: signatures cover the encoded path.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

import aiofiles
import aiohttp
import anyio.to_thread
from yarl import URL

from pipeline.api.models import AUDIO_EXTENSIONS
from pipeline.sandbox.audio_sniff import MIME_TYPES, AudioInfo, analyse_file
from pipeline.sandbox.lifecycle import UNDECODABLE
from pipeline.sandbox.multipart_form import TOO_LARGE
from pipeline.sandbox.objects import ObjectStore
from pipeline.sandbox.state import JobRecord, SandboxState
from pipeline.sandbox.validation import input_key

CHUNK: Final = 256 * 1024
# No whole-download timeout (a gigabyte takes a while); a stalled socket ends the fetch.
FETCH_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, connect=30, sock_read=60)
DOWNLOAD_FAILED: Final = "The input_url could not be downloaded"
EMPTY: Final = "The input file is empty."
SAFE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


class FetchFailed(Exception):
    """A download that ended the job; the message is the job's `error_message`."""


def status_message(status: int) -> str:
    if status == 403:
        return f"{DOWNLOAD_FAILED}: access denied (HTTP 403); a presigned URL may have expired."
    if status == 404:
        return f"{DOWNLOAD_FAILED}: not found (HTTP 404)."
    return f"{DOWNLOAD_FAILED} (HTTP {status})."


def input_filename(url: str) -> str:
    """The object name for the downloaded input: the URL's last path segment when it is a plain
    audio file name, else `input`."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in AUDIO_EXTENSIONS:
        return "input"
    return name if SAFE_NAME.fullmatch(name) else f"input.{ext}"


class InputFetcher:
    """Owns the background downloads of one API server; `close()` cancels what is still running."""

    def __init__(
        self, store: ObjectStore, state: SandboxState, max_bytes: int, clock: Callable[[], float]
    ) -> None:
        self._store = store
        self._state = state
        self._max_bytes = max_bytes
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def start(self, job: JobRecord) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"fetch-{job.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def resume(self) -> None:
        """Restart the downloads a previous run of a persistent sandbox left unfinished."""
        for job in self._state.jobs.values():
            if job.fetch_pending and job.input_url is not None:
                self.start(job)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No proxy from the environment: the sandbox fetches what it is given, as the service does.
            self._session = aiohttp.ClientSession(timeout=FETCH_TIMEOUT, trust_env=False)
        return self._session

    async def _run(self, job: JobRecord) -> None:
        assert job.input_url is not None
        try:
            with tempfile.TemporaryDirectory(prefix="slng-sandbox-fetch-") as tmp:
                path = Path(tmp) / "input"
                size = await self._download(job.input_url, path)
                audio = await anyio.to_thread.run_sync(analyse_file, path)
                key = input_key(job.job_id, input_filename(job.input_url))
                content_type = audio.mime_type or "application/octet-stream"
                await self._store.put_file(key, path, content_type)
            self._arrived(job, audio, size, key)
        except FetchFailed as exc:
            self._failed(job, str(exc))
        except (aiohttp.ClientError, TimeoutError, OSError):
            self._failed(job, f"{DOWNLOAD_FAILED}: the server could not be reached.")

    async def _download(self, url: str, path: Path) -> int:
        async with self._http().get(URL(url, encoded=True), allow_redirects=True) as resp:
            if resp.status != 200:
                raise FetchFailed(status_message(resp.status))
            if resp.content_length is not None and resp.content_length > self._max_bytes:
                raise FetchFailed(TOO_LARGE)
            size = 0
            async with aiofiles.open(path, "wb") as out:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise FetchFailed(TOO_LARGE)
                    await out.write(chunk)
        if size == 0:
            raise FetchFailed(EMPTY)
        return size

    def _arrived(self, job: JobRecord, audio: AudioInfo, size: int, key: str) -> None:
        fmt = audio.format
        job.input_key = key
        job.decodable = audio.decodable
        job.duration_seconds = audio.duration_seconds
        job.input_metadata = {
            k: v
            for k, v in {
                **job.input_metadata,
                "size_bytes": size,
                "format": fmt or job.input_metadata.get("format"),
                "mime_type": audio.mime_type or MIME_TYPES.get(fmt or ""),
                "duration_seconds": audio.duration_seconds,
            }.items()
            if v is not None
        }
        if not audio.decodable:
            job.error = UNDECODABLE
        self._settle(job)

    def _failed(self, job: JobRecord, message: str) -> None:
        job.decodable = False
        job.error = message
        self._settle(job)

    def _settle(self, job: JobRecord) -> None:
        job.fetch_pending = False
        job.ready_at = self._clock()
        self._state.save()
