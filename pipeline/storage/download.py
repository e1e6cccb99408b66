"""Downloading a presigned GET URL into a local file, atomically.

A reader never sees half a transcript: the body goes to a temporary file beside the target, is
flushed to disk, then renamed over it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path

import aiohttp

from pipeline.api.client import check_transport, connection_error
from pipeline.errors import ConfigError, ErrorClass, TransferError
from pipeline.redact import safe_url
from pipeline.storage.presigned import exact_url
from pipeline.transport.outage import storage_gate, through_gate

MAX_TRANSCRIPT_BYTES = 512 * 1024 * 1024


def _download_error(url: str, status: int) -> TransferError:
    if status == 403:  # S3's answer to an expired (or otherwise refused) presigned GET
        error_class = ErrorClass.EXPIRED
    elif status in (408, 429) or status >= 500:
        error_class = ErrorClass.TRANSIENT
    else:
        error_class = ErrorClass.PERMANENT
    return TransferError(f"download of {safe_url(url)}: HTTP {status}", error_class, status=status)


async def download(session: aiohttp.ClientSession, url: str, target: Path, allow_insecure_http: bool) -> int:
    """GET a presigned URL (no SLNG Authorization header) into `target`, atomically.

    The body goes to a fresh temporary file beside the target (created exclusively, owner-only),
    is flushed to disk, then renamed over the target: a reader never sees half a transcript, and an
    interrupted download leaves nothing behind but, at worst, a temporary file the next try removes.
    Sent past the S3 host's health gate: while the host is out it waits, then tries again.
    """
    gate = storage_gate(session, url)
    return await through_gate(gate, lambda: _download_once(session, url, target, allow_insecure_http))


async def _download_once(
    session: aiohttp.ClientSession, url: str, target: Path, allow_insecure_http: bool
) -> int:
    """One GET of `url` into `target`."""
    try:
        check_transport(url, "download URL", allow_insecure_http)
    except ConfigError as exc:
        raise TransferError(str(exc), ErrorClass.PERMANENT) from None
    exact = exact_url(url)  # sent as the API gave it: the signature covers the path as spelled
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
            stale.unlink(missing_ok=True)  # left by a killed earlier run
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise TransferError(f"cannot write {target}: {exc.strerror or exc}", ErrorClass.PERMANENT) from None
    tmp = Path(tmp_name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as stream:
            try:
                async with session.get(
                    exact, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=600, sock_read=60)
                ) as response:
                    if response.status != 200:
                        raise _download_error(url, response.status)
                    async for chunk in response.content.iter_chunked(256 * 1024):
                        size += len(chunk)
                        if size > MAX_TRANSCRIPT_BYTES:
                            raise TransferError("transcript larger than 512 MB", ErrorClass.PERMANENT)
                        stream.write(chunk)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise connection_error(f"download of {safe_url(url)}", exc) from None
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except OSError as exc:  # the local disk: full, read-only, a name too long
        raise TransferError(f"cannot write {target}: {exc.strerror or exc}", ErrorClass.PERMANENT) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # still there only when something went wrong
    return size
