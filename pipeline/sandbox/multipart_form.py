"""Reading a mode-A create body (`multipart/form-data`) into text fields and one spooled file.

aiohttp's reader reports a broken body (no or wrong boundary, a cut-off part, an unknown charset)
as a bare ValueError or LookupError; left alone those become its plain-text 500. Every such
problem, and every odd part name, is an `ApiError(400, ...)` here, so the client sees the same JSON
error envelope as for any other bad request.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles
import anyio
from aiohttp import BodyPartReader, MultipartReader, web

from pipeline.api.models import DEFAULT_CONTENT_TYPE
from pipeline.sandbox.api_errors import ApiError
from pipeline.sandbox.validation import safe_filename

TOO_LARGE = "File too large. Maximum size is 1 GB."
TEXT_FIELDS = frozenset(
    {"transcription_config", "job_id", "model_code", "metadata", "tracking", "output_config"}
)
FIELD_LIMIT = 1024 * 1024
FILE_CHUNK = 256 * 1024
MALFORMED = "Malformed multipart body"


@dataclass(frozen=True)
class SpooledFile:
    """The `file` part, written to a temporary file while it streamed in."""

    path: Path
    filename: str
    content_type: str
    size: int


@dataclass
class UploadForm:
    fields: dict[str, str] = field(default_factory=dict)
    file: SpooledFile | None = None


@asynccontextmanager
async def read_upload_form(request: web.Request, max_upload_bytes: int) -> AsyncIterator[UploadForm]:
    """The parsed form; its temporary file is removed on exit. `ApiError.job_id` carries the
    job_id field when one was read before the failure, for the create-attempt log."""
    form = UploadForm()
    try:
        try:
            await _read_parts(request, form, max_upload_bytes)
        except (ValueError, LookupError) as exc:  # aiohttp's reader on a broken body
            raise ApiError(400, MALFORMED) from exc
        except ApiError as exc:
            exc.job_id = exc.job_id or form.fields.get("job_id")
            raise
        yield form
    finally:
        if form.file is not None:
            await anyio.Path(form.file.path).unlink(missing_ok=True)


async def _read_parts(request: web.Request, form: UploadForm, max_upload_bytes: int) -> None:
    reader: MultipartReader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "Nested multipart bodies are not supported")
        name = part.name
        if not name:
            raise ApiError(400, "A multipart part has no name")
        if name == "file":
            if form.file is not None:
                raise ApiError(400, "Only one file may be uploaded")
            form.file = await _spool_file(part, max_upload_bytes)
        elif name in form.fields:
            raise ApiError(400, f"Duplicate field: {name}")
        elif name in TEXT_FIELDS:
            form.fields[name] = await _read_text(part, name)
        else:
            raise ApiError(400, f"Unknown field: {name}")


async def _spool_file(part: BodyPartReader, max_upload_bytes: int) -> SpooledFile:
    filename = safe_filename(part.filename or "")
    content_type = part.headers.get("Content-Type", DEFAULT_CONTENT_TYPE)
    fd, name = tempfile.mkstemp(prefix="slng-sandbox-upload-")
    path = Path(name)
    size = 0
    try:
        async with aiofiles.open(fd, "wb") as fh:
            while chunk := await part.read_chunk(FILE_CHUNK):
                size += len(chunk)
                if size > max_upload_bytes:
                    raise ApiError(413, TOO_LARGE)
                await fh.write(chunk)
    except BaseException:
        await anyio.Path(path).unlink(missing_ok=True)
        raise
    return SpooledFile(path, filename, content_type, size)


async def _read_text(part: BodyPartReader, name: str) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        data.extend(chunk)
        if len(data) > FIELD_LIMIT:
            raise ApiError(400, f"{name} is too large")
    charset = part.get_charset("utf-8")
    try:
        return data.decode(charset)
    except LookupError as exc:
        raise ApiError(400, f"{name} has an unknown charset") from exc
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"{name} is not valid {charset.upper()} text") from exc
