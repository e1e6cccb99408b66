"""The SLNG Batch API client: one method per endpoint, every failure turned into a classified error.

This layer does not retry: it reports what happened (`TransferError` with an `ErrorClass`) and the
runner decides, because only the runner knows whether a repeat is safe (a create is not).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
import anyio
from pydantic import BaseModel, ValidationError
from yarl import URL

from pipeline.api.models import (
    BatchJob,
    CreateFromUploadRequest,
    CreateFromUrlRequest,
    JobAcknowledgement,
    JobFiles,
    JobList,
    PresignRequest,
    PresignResponse,
    is_valid_job_id,
)
from pipeline.errors import (
    AuthenticationError,
    ConfigError,
    ErrorClass,
    NetworkError,
    TransferError,
    classify_api_status,
)
from pipeline.redact import redact, safe_url
from pipeline.transport.loopback import is_loopback_host
from pipeline.transport.outage import OutageGates, through_gate
from pipeline.transport.rates import AdaptiveRate, RateControl
from pipeline.transport.request_tally import RequestTally
from pipeline.transport.retry import parse_retry_after
from pipeline.transport.throttle import (
    THROTTLE_PATIENCE_SECONDS,
    ThrottledTooLongError,
    is_throttle,
    throttle_delay,
)
from pipeline.version import __version__

orjson: ModuleType | None
try:  # the `fast` extra: about twice as fast as the json module at encoding the create body
    import orjson
except ImportError:  # a test hides it to check the fallback
    orjson = None

M = TypeVar("M", bound=BaseModel)
P = ParamSpec("P")
R = TypeVar("R")

MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a larger API answer is refused, not read into memory
ERROR_BODY_BYTES = 64 * 1024  # of an error answer, only this much is read (for its message)
USER_AGENT = f"slng-bulk/{__version__}"
JOBS_PATH = "/v1/batch/jobs"


def encode_json(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as orjson writes it (and pydantic's `model_dump_json`): the same bytes
    with or without orjson installed. What orjson refuses and JSON allows (an integer past 64 bits,
    nesting past 255 levels, from a server's echo) is written by the standard library instead."""
    if orjson is not None:
        try:
            encoded: bytes = orjson.dumps(payload)
            return encoded
        except TypeError:  # orjson.JSONEncodeError
            pass
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def check_transport(url: str, what: str, allow_insecure_http: bool) -> None:
    """Refuse plain http to anything but loopback unless explicitly allowed."""
    if url.startswith("https://"):
        return  # every presigned URL is checked: the common case costs no parse
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
        return NetworkError(f"{operation}: timed out ({kind})")
    detail = " ".join(str(exc).split())[:300] or kind
    return NetworkError(f"{operation}: {kind}: {detail}")


def _past_the_gate(
    call: Callable[Concatenate[SlngClient, P], Awaitable[R]],
) -> Callable[Concatenate[SlngClient, P], Awaitable[R]]:
    """Send the request past the API's health gate: while the API is out it waits (and a request
    that failed for the outage is sent again) instead of failing (pipeline.transport.outage)."""

    @functools.wraps(call)
    async def gated(self: SlngClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await through_gate(self.gate, lambda: call(self, *args, **kwargs))

    return gated


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
        throttle_patience: float = THROTTLE_PATIENCE_SECONDS,
    ) -> None:
        check_transport(api_url, "API URL", allow_insecure_http)
        self._session = session
        self._base = api_url.rstrip("/")
        self._jobs_url = URL(self._base + JOBS_PATH)  # parsed once: presign and create both post here
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._rates = rates
        self._timeout = (timeouts or ApiTimeouts()).client_timeout()
        self.allow_insecure_http = allow_insecure_http
        self.throttle_patience = throttle_patience
        gates = OutageGates.of(session)  # a command's session has them; a bare one sends as ever
        self.gate = gates.api(self._base, self._headers, f"{JOBS_PATH}?page=1&page_size=1") if gates else None
        self.requests = RequestTally()  # what was sent and answered, for progress and metrics

    # --- endpoints -------------------------------------------------------------------------------

    async def presign(self, request: PresignRequest) -> PresignResponse:
        body = request.model_dump_json(exclude_none=True).encode()
        presigned = await self._call(
            "presign", PresignResponse, "POST", JOBS_PATH, self._rates.presign, json_body=body
        )
        try:
            check_transport(presigned.upload.url, "upload URL from the API", self.allow_insecure_http)
        except ConfigError as exc:  # this file cannot be sent safely; the run goes on
            raise TransferError(str(exc), ErrorClass.PERMANENT) from None
        return presigned

    async def create_from_upload(
        self, request: CreateFromUploadRequest, echo: Mapping[str, Any] | None = None
    ) -> JobAcknowledgement:
        """Presign step 3. `echo` holds the configs the presign step echoed: they are sent unchanged."""
        echoed = {key: value for key, value in (echo or {}).items() if value}
        if echoed:  # the echo replaces the model's own fields: merged as data, encoded once
            body = encode_json({**request.model_dump(mode="json", exclude_none=True), **echoed})
        else:
            body = request.model_dump_json(exclude_none=True).encode()
        return await self._call(
            "create", JobAcknowledgement, "POST", JOBS_PATH, self._rates.create, json_body=body
        )

    async def create_from_url(self, request: CreateFromUrlRequest) -> JobAcknowledgement:
        """Mode B: the service downloads `input_url` itself. The URL may carry a signature: the body
        is never logged, and errors name the job, not the URL."""
        body = request.model_dump_json(exclude_none=True).encode()
        return await self._call(
            "create", JobAcknowledgement, "POST", JOBS_PATH, self._rates.create, json_body=body
        )

    async def get_job(self, job_id: str) -> BatchJob | None:
        """The job, or None when the API says 404 (never created, or not visible to this key)."""
        try:
            return await self._call("get", BatchJob, "GET", self._job_path(job_id), self._rates.read)
        except TransferError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                return None
            raise

    async def list_jobs(self, page: int = 1, page_size: int = 100, **filters: str) -> JobList:
        params = {"page": str(page), "page_size": str(page_size), **filters}
        return await self._call("list", JobList, "GET", JOBS_PATH, self._rates.read, params=params)

    async def job_files(self, job_id: str) -> JobFiles:
        return await self._call("files", JobFiles, "GET", self._job_path(job_id) + "/files", self._rates.read)

    async def delete_job(self, job_id: str) -> JobAcknowledgement:
        return await self._call(
            "delete", JobAcknowledgement, "DELETE", self._job_path(job_id), self._rates.create
        )

    # --- plumbing --------------------------------------------------------------------------------

    @staticmethod
    def _job_path(job_id: str) -> str:
        if not is_valid_job_id(job_id):  # also keeps anything path-like out of the URL
            raise TransferError(f"invalid job_id {job_id!r}: must be alphanumeric", ErrorClass.PERMANENT)
        return f"{JOBS_PATH}/{quote(job_id, safe='')}"

    @_past_the_gate
    async def _call(
        self,
        operation: str,
        model: type[M],
        method: str,
        path: str,
        rate: AdaptiveRate,
        *,
        json_body: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> M:
        """One request; a 2xx answer's body read straight into `model`, anything else an error.

        A throttled answer (`transport.throttle`) is no error: the request waits its turn and is sent
        again, here, so the caller's retry budget is spent on its own errors only.
        """
        waits = 0
        while True:
            await rate.acquire()
            try:
                status, raw, retry_after = await self._send(operation, method, path, json_body, params)
            except TransferError:
                self.requests.request_done(operation, None)
                raise
            self.requests.request_done(operation, status)
            if 200 <= status < 300:
                rate.succeeded()
                return self._parse(operation, status, raw, model)
            if status in (429, 503):
                rate.throttled()
            if not is_throttle(status, retry_after):
                raise self._error(operation, status, raw, retry_after)
            delay = throttle_delay(retry_after, waits)
            refused_for = rate.refused_for()
            if refused_for + delay > self.throttle_patience:
                raise ThrottledTooLongError(
                    f"{operation}: the API accepted no {rate.name} request for {refused_for:.0f} s "
                    f"(HTTP {status}: {_error_message(raw)}); stopping",
                    status,
                )
            waits += 1
            await anyio.sleep(delay)

    async def _send(
        self,
        operation: str,
        method: str,
        path: str,
        json_body: bytes | None,
        params: dict[str, str] | None,
    ) -> tuple[int, bytes, float | None]:
        """Send once: (status, body or its prefix, Retry-After seconds)."""
        try:
            async with self._session.request(
                method,
                self._jobs_url if path == JOBS_PATH else self._base + path,
                data=json_body,
                params=params,
                headers=self._headers if json_body is None else self._json_headers,
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
        return status, raw, retry_after

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
    def _parse(operation: str, status: int, raw: bytes, model: type[M]) -> M:
        """One pass from bytes to the model (pydantic's JSON parser), no intermediate dicts."""
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            if first["type"] == "json_invalid":  # not JSON at all, or nested past the parser's limit
                raise TransferError(
                    f"{operation}: HTTP {status} with a body that is not JSON",
                    ErrorClass.TRANSIENT,
                    status=status,
                ) from None
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
