"""The SLNG Batch API client: one method per endpoint, every failure turned into a classified error.

This layer does not retry: it reports what happened (`TransferError` with an `ErrorClass`) and the
runner decides, because only the runner knows whether a repeat is safe (a create is not).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import BaseModel, ValidationError

from pipeline import __version__
from pipeline.api.models import (
    BatchJob,
    CreateFromUploadRequest,
    JobAcknowledgement,
    JobFiles,
    JobList,
    PresignRequest,
    PresignResponse,
    is_valid_job_id,
)
from pipeline.errors import AuthenticationError, ConfigError, ErrorClass, TransferError, classify_api_status
from pipeline.flow.rates import AdaptiveRate, RateControl
from pipeline.flow.retry import parse_retry_after
from pipeline.observe.redact import redact, safe_url

M = TypeVar("M", bound=BaseModel)

MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a larger API answer is refused, not read into memory
ERROR_BODY_BYTES = 64 * 1024  # of an error answer, only this much is read (for its message)
USER_AGENT = f"slng-bulk/{__version__}"
JOBS_PATH = "/v1/batch/jobs"


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_transport(url: str, what: str, allow_insecure_http: bool) -> None:
    """Refuse plain http to anything but loopback unless explicitly allowed."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and (allow_insecure_http or is_loopback_host(parts.hostname)):
        return
    raise ConfigError(
        f"{what} {safe_url(url)} is not https; use https or pass --allow-insecure-http"
        if parts.scheme == "http"
        else f"{what} {safe_url(url)} is not an http(s) URL"
    )


async def read_capped(response: aiohttp.ClientResponse, limit: int, operation: str) -> bytes:
    """The whole body; a TransferError (transient) when it is larger than `limit` bytes.

    `StreamReader.read(n)` returns whatever has arrived, not n bytes: loop until EOF or the cap.
    A declared Content-Length over the cap is refused before a byte of the body is read.
    """
    declared = response.content_length
    size = 0
    chunks: list[bytes] = []
    if declared is None or declared <= limit:
        while size <= limit:
            chunk = await response.content.read(limit + 1 - size)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
    raise TransferError(f"{operation}: response larger than {limit} bytes", ErrorClass.TRANSIENT)


async def read_prefix(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most the first `limit` bytes of the body (the rest is dropped with the connection)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def connection_error(operation: str, exc: BaseException) -> TransferError:
    """A network-level failure (reset, timeout, refused): always transient, outcome unknown."""
    kind = type(exc).__name__
    if isinstance(exc, TimeoutError):
        return TransferError(f"{operation}: timed out ({kind})", ErrorClass.TRANSIENT)
    detail = " ".join(str(exc).split())[:300] or kind
    return TransferError(f"{operation}: {kind}: {detail}", ErrorClass.TRANSIENT)


@dataclass(frozen=True)
class ApiTimeouts:
    connect: float = 10.0
    read: float = 60.0
    total: float = 120.0

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, sock_connect=self.connect, sock_read=self.read)


class SlngClient:
    """Talks to the Batch API over a shared aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        api_key: str,
        rates: RateControl,
        timeouts: ApiTimeouts | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        check_transport(api_url, "API URL", allow_insecure_http)
        self._session = session
        self._base = api_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}
        self._rates = rates
        self._timeout = (timeouts or ApiTimeouts()).client_timeout()
        self.allow_insecure_http = allow_insecure_http

    # --- endpoints -------------------------------------------------------------------------------

    async def presign(self, request: PresignRequest) -> PresignResponse:
        body = request.model_dump(mode="json", exclude_none=True)
        response = await self._call("presign", "POST", JOBS_PATH, self._rates.presign, json_body=body)
        presigned = self._parse("presign", response, PresignResponse)
        try:
            check_transport(presigned.upload.url, "upload URL from the API", self.allow_insecure_http)
        except ConfigError as exc:  # this file cannot be sent safely; the run goes on
            raise TransferError(str(exc), ErrorClass.PERMANENT) from None
        return presigned

    async def create_from_upload(
        self, request: CreateFromUploadRequest, echo: Mapping[str, Any] | None = None
    ) -> JobAcknowledgement:
        """Presign step 3. `echo` holds the configs the presign step echoed: they are sent unchanged."""
        body = request.model_dump(mode="json", exclude_none=True)
        body.update({key: value for key, value in (echo or {}).items() if value})
        response = await self._call("create", "POST", JOBS_PATH, self._rates.create, json_body=body)
        return self._parse("create", response, JobAcknowledgement)

    async def get_job(self, job_id: str) -> BatchJob | None:
        """The job, or None when the API says 404 (never created, or not visible to this key)."""
        try:
            response = await self._call("get", "GET", self._job_path(job_id), self._rates.read)
        except TransferError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                return None
            raise
        return self._parse("get", response, BatchJob)

    async def list_jobs(self, page: int = 1, page_size: int = 100, **filters: str) -> JobList:
        params = {"page": str(page), "page_size": str(page_size), **filters}
        response = await self._call("list", "GET", JOBS_PATH, self._rates.read, params=params)
        return self._parse("list", response, JobList)

    async def job_files(self, job_id: str) -> JobFiles:
        response = await self._call("files", "GET", self._job_path(job_id) + "/files", self._rates.read)
        return self._parse("files", response, JobFiles)

    async def delete_job(self, job_id: str) -> JobAcknowledgement:
        response = await self._call("delete", "DELETE", self._job_path(job_id), self._rates.create)
        return self._parse("delete", response, JobAcknowledgement)

    # --- plumbing --------------------------------------------------------------------------------

    @staticmethod
    def _job_path(job_id: str) -> str:
        if not is_valid_job_id(job_id):  # also keeps anything path-like out of the URL
            raise TransferError(f"invalid job_id {job_id!r}: must be alphanumeric", ErrorClass.PERMANENT)
        return f"{JOBS_PATH}/{quote(job_id, safe='')}"

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        rate: AdaptiveRate,
        *,
        json_body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        await rate.acquire()
        try:
            async with self._session.request(
                method,
                self._base + path,
                json=json_body,
                params=params,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,  # a redirect could carry our bearer key elsewhere
            ) as response:
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if 200 <= status < 300:
                    raw = await read_capped(response, MAX_RESPONSE_BYTES, operation)
                else:  # only the message is wanted: a prefix, however large the body
                    raw = await read_prefix(response, ERROR_BODY_BYTES)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise connection_error(operation, exc) from None
        if 200 <= status < 300:
            rate.succeeded()
            try:
                return json.loads(raw)
            except (ValueError, RecursionError):
                raise TransferError(
                    f"{operation}: HTTP {status} with a body that is not JSON",
                    ErrorClass.TRANSIENT,
                    status=status,
                ) from None
        if status in (429, 503):
            rate.throttled()
        raise self._error(operation, status, raw, retry_after)

    @staticmethod
    def _error(operation: str, status: int, raw: bytes, retry_after: float | None) -> TransferError:
        message = _error_message(raw)
        if 300 <= status < 400:
            return TransferError(
                f"{operation}: unexpected redirect (HTTP {status})", ErrorClass.PERMANENT, status=status
            )
        error_class = classify_api_status(status)
        text = f"{operation}: HTTP {status}: {message}"
        if error_class is ErrorClass.AUTH:
            return AuthenticationError(
                f"the API refused the key (HTTP {status}: {message}); check SLNG_API_KEY / --api-key-file "
                "and that the key is active in the dashboard",
                status=status,
            )
        return TransferError(text, error_class, status=status, retry_after=retry_after)

    @staticmethod
    def _parse(operation: str, payload: Any, model: type[M]) -> M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(part) for part in first["loc"])[:100] or "body"
            message = "".join(ch if ch.isprintable() else " " for ch in first["msg"])[:200]
            raise TransferError(
                f"{operation}: unexpected response shape ({where}: {message})", ErrorClass.TRANSIENT
            ) from None
        except RecursionError:
            raise TransferError(
                f"{operation}: unexpected response shape (nested too deeply)", ErrorClass.TRANSIENT
            ) from None


def _error_message(raw: bytes) -> str:
    """The API's `{"error": ...}` text, or a short, printable excerpt of whatever came back."""
    try:
        payload = json.loads(raw)
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            text = "".join(ch if ch.isprintable() else " " for ch in payload["error"][:1000])
            return redact(text)[:300]
    except (ValueError, RecursionError):
        pass
    text = raw[:200].decode("utf-8", "replace")
    return redact("".join(ch if ch.isprintable() else " " for ch in text)).strip() or "(empty body)"
