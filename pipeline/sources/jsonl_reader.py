"""JSONL manifests (and `{...}` lines on stdin): one JSON object per line, API-shaped settings."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, Final

from pydantic import ValidationError

from pipeline.sources.checks import (
    SourceContext,
    SourceOptions,
    file_row,
    open_manifest,
    os_reason,
    path_or_url_row,
    reject,
)
from pipeline.sources.lines import Line, binary_lines
from pipeline.sources.remote import is_url, url_row
from pipeline.sources.row_settings import RowError, json_type, loc_name, validation_reason
from pipeline.sources.rows import JobSettings, Row, quote

_SETTINGS_KEYS: Final = (
    "transcription_config",
    "tracking",
    "output_config",
    "metadata",
    "model_code",
    "extra",
)
JSONL_KEYS: Final = ("path", "job_id", *_SETTINGS_KEYS, "url")
_JSONL_KEY_SET: Final = frozenset(JSONL_KEYS)


def _json_settings(data: dict[str, Any], defaults: JobSettings) -> JobSettings:
    try:
        row = JobSettings.model_validate({"transcription_config": {}, **data})
    except ValidationError as exc:
        raise RowError(validation_reason(exc, loc_name)) from None
    return row.merged_over(defaults)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_row(ctx: SourceContext, line: int, text: str) -> Row:
    """One JSONL object (also used for `{...}` lines on stdin)."""
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return reject(ctx.source, line, None, f"invalid JSON ({exc.msg} at character {exc.pos + 1})")
    except ValueError as exc:
        return reject(ctx.source, line, None, f"invalid JSON ({exc})")
    except RecursionError:
        return reject(ctx.source, line, None, "invalid JSON (nested too deeply)")
    return object_row(ctx, line, obj)


def object_row(ctx: SourceContext, line: int, obj: object) -> Row:
    """One row given as an object with the JSONL keys (a parsed line, or a library caller's dict)."""
    if not isinstance(obj, dict):
        return reject(ctx.source, line, None, f"expected a JSON object, got {json_type(obj)}")
    unknown = [key for key in obj if key not in _JSONL_KEY_SET]
    path_cell = obj.get("path")
    if path_cell is not None and not isinstance(path_cell, str):
        return reject(ctx.source, line, None, f"path: expected a string, got {json_type(path_cell)}")
    path_text = path_cell or ""  # exact: JSON can express leading/trailing spaces
    url_cell = obj.get("url")
    if url_cell is not None and not isinstance(url_cell, str):
        return reject(ctx.source, line, None, f"url: expected a string, got {json_type(url_cell)}")
    display = (
        os.path.normpath(os.path.join(ctx.root, path_text)) if path_text and "\0" not in path_text else None
    )
    if unknown:
        allowed = ", ".join(JSONL_KEYS)
        return reject(ctx.source, line, display, f"unknown key {quote(unknown[0])} (allowed: {allowed})")
    job_id = obj.get("job_id")
    if job_id is not None and not isinstance(job_id, str):
        return reject(ctx.source, line, display, f"job_id: expected a string, got {json_type(job_id)}")
    data = {key: obj[key] for key in _SETTINGS_KEYS if obj.get(key) is not None}
    cache = ctx.cache
    settings: JobSettings | str = cache.defaults
    if data:
        key = json.dumps(data, sort_keys=True, separators=(",", ":"))
        settings = cache.get(key, _json_settings, data, cache.defaults)
    if url_cell:
        return path_or_url_row(ctx, line, path_text, url_cell, job_id, settings)
    return file_row(ctx, line, path_text, job_id, settings)


def line_rows(ctx: SourceContext, lines: Iterator[Line], *, allow_paths: bool) -> Iterator[Row]:
    """JSONL lines (and, for stdin, plain path lines)."""
    lineno = 0
    try:
        for lineno, text, problem in lines:
            if problem is not None:
                yield reject(ctx.source, lineno, None, problem)
                continue
            stripped = text.strip()
            if not stripped:
                continue
            if allow_paths and is_url(stripped):
                yield url_row(
                    ctx.source, lineno, stripped, None, ctx.cache.defaults, allow_http=ctx.allow_http
                )
            elif allow_paths and not stripped.startswith("{"):
                yield file_row(ctx, lineno, stripped, None, ctx.cache.defaults)
            else:
                yield _json_row(ctx, lineno, stripped)
    except OSError as exc:
        yield reject(ctx.source, lineno + 1, None, f"cannot read: {os_reason(exc)}")


def jsonl_rows(source: str, defaults: JobSettings, options: SourceOptions) -> Iterator[Row]:
    root = os.path.dirname(os.path.abspath(source))
    ctx = SourceContext.under(source, root, options, defaults)
    with open_manifest(source) as handle:
        yield from line_rows(ctx, binary_lines(handle), allow_paths=False)
