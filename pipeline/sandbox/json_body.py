"""The JSON body of a `POST /v1/batch/jobs`, parsed once, before the fault middleware decides.

Whether a POST is a presign or a create (two fault operations) depends on the body, so it is read
while classifying the request and kept on it for the handlers.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from aiohttp import web


class NotJson:
    """Marker stored instead of a body that did not parse as JSON (or as text at all)."""


JSON_BODY_KEY = web.RequestKey("sandbox_json_body", object)


async def read_json_body(request: web.Request) -> Any:
    """The parsed body (kept on the request), or `NotJson()`: bad JSON, a bad charset, too large."""
    try:
        body: Any = await request.json()
    except (ValueError, LookupError, web.HTTPException):
        body = NotJson()
    request[JSON_BODY_KEY] = body
    return body


def is_presign(body: Any) -> TypeGuard[dict[str, Any]]:
    """Presign step 1 is told apart from a create by its `mode` field."""
    return isinstance(body, dict) and "mode" in body
