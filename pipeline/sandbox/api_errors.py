"""The API's error envelope `{"error": "..."}` and JSON responses built from the project's models.

Every body goes through a `pipeline.api.models` type, so the sandbox cannot send something the client's
parser would not accept.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from pydantic import BaseModel, ValidationError

from pipeline.api.models import ErrorBody

INJECTED_API_ERRORS: dict[int, str] = {
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


class ApiError(Exception):
    """Raised anywhere in a handler; becomes an error response with this status and message."""

    def __init__(self, status: int, message: str, job_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.job_id = job_id  # for the attempt log, when only the handler knew it


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = ErrorBody(error=message)
    return web.json_response(body.model_dump(), status=status, headers=headers)


def model_response(model: BaseModel, status: int = 200, exclude_none: bool = False) -> web.Response:
    return web.json_response(model.model_dump(mode="json", exclude_none=exclude_none), status=status)


def injected_api_error(request: web.Request, status: int, headers: Mapping[str, str]) -> web.StreamResponse:
    return error_response(status, INJECTED_API_ERRORS.get(status, "Injected error"), headers)


def validation_message(exc: ValidationError) -> str:
    """A short, human message for the first problem pydantic found in a request body."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if loc == "job_id":
        return "job_id must be alphanumeric"
    if err["type"] == "missing":
        return f"{loc} is required"
    if err["type"] == "extra_forbidden":
        return f"Unknown field: {loc}"
    return f"Invalid {loc}: {err['msg']}"
