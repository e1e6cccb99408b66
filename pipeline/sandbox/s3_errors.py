"""S3's XML error responses, so clients parse sandbox failures exactly like AWS ones."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from xml.sax.saxutils import escape

from aiohttp import web

# Status → (Code, Message) for statuses the fault injector may produce on S3.
INJECTED_S3_ERRORS: dict[int, tuple[str, str]] = {
    429: ("TooManyRequests", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    502: ("BadGateway", "Bad Gateway"),
    503: ("SlowDown", "Please reduce your request rate."),
    504: ("GatewayTimeout", "Gateway Timeout"),
}


def s3_error(
    status: int,
    code: str,
    message: str,
    resource: str = "",
    headers: Mapping[str, str] | None = None,
    head: bool = False,
) -> web.Response:
    """An S3 error response; HEAD requests get the status and headers only, as S3 does."""
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    )
    all_headers = {"x-amz-request-id": request_id, **(headers or {})}
    return web.Response(
        status=status,
        body=None if head else body.encode(),
        content_type="application/xml",
        headers=all_headers,
    )


def injected_s3_error(request: web.Request, status: int, headers: Mapping[str, str]) -> web.StreamResponse:
    code, message = INJECTED_S3_ERRORS.get(status, ("InternalError", "Injected error"))
    return s3_error(status, code, message, request.path, headers, head=request.method == "HEAD")
