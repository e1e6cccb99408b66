"""A row's own job settings (CSV cells or JSON keys), validated and merged over the defaults.

Errors become one short line naming the field; a bounded memo lets a million rows that say
`language=fr` share one settings object.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from pydantic import ValidationError

from pipeline.sources.rows import JobSettings, quote

_SETTINGS_CACHE_SIZE: Final = 4096


class RowError(Exception):
    """A row-level problem; its message is the Rejection reason."""


def loads_json(text: str, what: str) -> Any:
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise RowError(f"{what}: malformed JSON ({exc.msg} at character {exc.pos + 1})") from None
    except ValueError as exc:
        raise RowError(f"{what}: malformed JSON ({exc})") from None
    except RecursionError:
        raise RowError(f"{what}: JSON nested too deeply") from None


def loc_suffix(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def loc_name(loc: tuple[int | str, ...]) -> str:
    """Dotted field name for a pydantic error location, e.g. "transcription_config.diarization"."""
    return str(loc[0]) + loc_suffix(loc[1:]) if loc else ""


def validation_reason(exc: ValidationError, name: Callable[[tuple[int | str, ...]], str]) -> str:
    """First pydantic error as one short line that names the field (and the allowed values)."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    field = name(tuple(err["loc"])) or "settings"
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        text = f"{field}: unknown key"
    elif kind == "literal_error":
        # pydantic writes the choices as Python literals ('none', 'speaker'): quoted as prose instead
        expected = str(err.get("ctx", {}).get("expected", "")).replace("'", '"')
        text = f"{field}: invalid value {quote(value)} (allowed: {expected})"
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
        text = f"{field}: {msg[:1].lower()}{msg[1:]}"
        if kind != "value_error" and isinstance(value, str | int | float | bool):
            text += f" (got {quote(value)})"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text


class SettingsCache:
    """Bounded memo of row settings: a million rows saying `language=fr` share one JobSettings."""

    def __init__(self, defaults: JobSettings) -> None:
        self.defaults = defaults
        self._memo: dict[object, JobSettings | str] = {}

    def get(self, key: object, build: Callable[..., JobSettings], *args: Any) -> JobSettings | str:
        """Merged settings for this key, or the rejection reason (bad settings are memoised too)."""
        hit = self._memo.get(key)
        if hit is None:
            try:
                hit = build(*args)
            except RowError as exc:
                hit = str(exc)
            if len(self._memo) >= _SETTINGS_CACHE_SIZE:
                del self._memo[next(iter(self._memo))]  # oldest first: cheap FIFO bound
            self._memo[key] = hit
        return hit


def json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return "an object"
