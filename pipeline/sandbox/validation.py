"""Parsing and validating create requests into one normalised shape, whatever the mode.

Uses the project's request models (`pipeline.api.models`), so the sandbox rejects exactly what those
models reject; every failure is an `ApiError(400, ...)` with a short message.
"""

from __future__ import annotations

import json
import uuid
from pathlib import PurePosixPath
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from pipeline.api.models import (
    AUDIO_EXTENSIONS,
    DEFAULT_MODEL_CODE,
    SUPPORTED_MODEL_CODES,
    OutputConfig,
    Tracking,
    TranscriptionConfig,
    is_valid_job_id,
)
from pipeline.sandbox.api_errors import ApiError, validation_message
from pipeline.transport.loopback import is_loopback_host

M = TypeVar("M", bound=BaseModel)
CONFIG_DEFAULTS = {"language": "en", "operating_point": "standard", "diarization": "none"}


def parse_model(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, validation_message(exc)) from exc


def parse_json_part(name: str, text: str | None, model: type[M] | None = None) -> Any:
    """A multipart field that carries a JSON object as text."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ApiError(400, f"{name} must be a JSON object") from exc
    if not isinstance(value, dict):
        raise ApiError(400, f"{name} must be a JSON object")
    if model is None:
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ApiError(400, f"Invalid {name}: {validation_message(exc)}") from exc


def filled_config(config: TranscriptionConfig) -> dict[str, Any]:
    """The config as the service echoes it: defaults filled in, unset optionals left out."""
    return {**CONFIG_DEFAULTS, **config.model_dump(exclude_none=True)}


def job_config(
    config: TranscriptionConfig, tracking: Tracking | None, output_config: OutputConfig | None
) -> dict[str, Any]:
    result: dict[str, Any] = {"type": "transcription", "transcription_config": filled_config(config)}
    if tracking is not None:
        result["tracking"] = tracking.model_dump(exclude_none=True)
    if output_config is not None:
        result["output_config"] = output_config.model_dump(exclude_none=True)
    return result


def check_model_code(model_code: str | None) -> str:
    code = model_code or DEFAULT_MODEL_CODE
    if code not in SUPPORTED_MODEL_CODES:
        raise ApiError(400, f"Unsupported model_code: {code}")
    return code


def check_job_id(job_id: str | None) -> str:
    if job_id is None:
        return "job" + uuid.uuid4().hex
    if not is_valid_job_id(job_id):
        raise ApiError(400, "job_id must be alphanumeric")
    return job_id


def safe_filename(filename: str) -> str:
    """The basename of a client-supplied name, with a supported audio extension."""
    name = PurePosixPath(filename.replace("\\", "/")).name.strip()
    if not name or name in (".", ".."):
        raise ApiError(400, "filename is invalid")
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in AUDIO_EXTENSIONS:
        allowed = ", ".join(sorted(AUDIO_EXTENSIONS))
        raise ApiError(400, f"Unsupported file extension: {ext or '(none)'}. Allowed: {allowed}")
    return name


def check_input_url(url: str) -> str:
    """HTTPS, as the real service requires; plain HTTP is accepted only to loopback (the sandbox's
    own choice, so tests can serve inputs without certificates)."""
    parts = urlsplit(url)
    if not parts.netloc or not (
        parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))
    ):
        raise ApiError(400, "input_url must be an https URL")
    return url


def input_key(job_id: str, filename: str) -> str:
    return f"inputs/{job_id}/{filename}"
