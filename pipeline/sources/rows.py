"""The validated unit of work: one audio file plus the settings its job will be created with.

Sources (manifests, directories, stdin) turn their input into these rows before any remote call,
so a typo in row 90,000 is reported up front instead of failing a job hours into a run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from pydantic import BaseModel, ConfigDict, field_validator

from pipeline.api.models import (
    DEFAULT_MODEL_CODE,
    SUPPORTED_MODEL_CODES,
    OutputConfig,
    Tracking,
    TranscriptionConfig,
    WireTranscriptionConfig,
)

__all__ = ["FileSpec", "JobSettings", "Rejection", "Row", "check_extra", "escape_control"]

if TYPE_CHECKING:
    from pipeline.sources.remote import RemoteObject

_M = TypeVar("_M", bound=BaseModel)

# C0, DEL, C1 and the Unicode line/paragraph separators: anything that could break a log line.
_CONTROL_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROL_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})
# Lone surrogates (undecodable file-name bytes under surrogateescape) cannot be written as UTF-8.
_CONTROL_ESCAPES.update({c: f"\\u{c:04x}" for c in range(0xD800, 0xE000)})
# Bidi overrides, zero-width characters and the BOM can reorder or hide text on screen.
_INVISIBLE = (*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF)
_CONTROL_ESCAPES.update({c: f"\\u{c:04x}" for c in _INVISIBLE})


TAG_SEPARATOR = ","  # the one separator of tags written as text: --tags, SLNG_BULK_TAGS, config, CSV


def split_tags(text: str) -> list[str]:
    """Tags written as text (`demo,short`), stripped, empties dropped.

    A ';' is refused rather than kept inside a tag: it separated CSV tags before the comma became
    the one separator, and an old manifest must not silently label jobs `demo;short`. A tag that
    holds a comma or a semicolon is written as a JSON list (CSV) or a TOML list (config file).
    """
    if ";" in text:
        raise ValueError(
            "tags: separate tags with commas (demo,short), or give a JSON list for tags that contain"
            " a comma or a semicolon"
        )
    return [tag for tag in (part.strip() for part in text.split(TAG_SEPARATOR)) if tag]


QUOTE_CHARS = 80  # a user value quoted in a rejection reason is cut after this many characters


def quote(value: object) -> str:
    """Quote a user value for a reason, as prose: strings in double quotes with control, invisible and
    quote characters escaped (so the reason stays one safe line), others as JSON; truncated."""
    if not isinstance(value, str):
        text = json.dumps(value, default=str)
        return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "..."
    if len(value) > QUOTE_CHARS:
        return _double_quoted(value[:QUOTE_CHARS]) + "..."
    return _double_quoted(value)


def _double_quoted(text: str) -> str:
    """`"text"`, escaping like repr does (\\n, \\x00, \\u202e) but without Python's single quotes."""
    escaped = "".join(
        "\\" + char if char in '"\\' else char if char.isprintable() else repr(char)[1:-1] for char in text
    )
    return f'"{escaped}"'


def escape_control(text: str) -> str:
    """Escape control characters so untrusted text (file names, cells) stays on one log line."""
    return text.translate(_CONTROL_ESCAPES)


@overload
def _merge(base: _M, over: _M | None) -> _M: ...
@overload
def _merge(base: _M | None, over: _M | None) -> _M | None: ...
def _merge(base: _M | None, over: _M | None) -> _M | None:
    """Field-by-field overlay: a field the row sets (not None) wins, the others keep the default."""
    if over is None:
        return base
    if base is None:
        return over
    values = {name: getattr(base, name) for name in type(base).model_fields}
    values.update({name: v for name in type(over).model_fields if (v := getattr(over, name)) is not None})
    # Both sides were validated and these models have no cross-field rules, so no re-validation.
    return type(base).model_construct(**values)


def _prune_empty(value: dict[str, Any]) -> dict[str, Any]:
    """Drop empty sub-objects (tracking={} means the same as no tracking) so they hash alike."""
    return {k: v for k, v in value.items() if v != {}}


RECOGNITION_FIELDS = ("transcription_config", "extra", "model_code")
"""The JobSettings that change the recognition itself, and so a file's identity. Tracking and
metadata are labels; output_config shapes the SRT made from the same recognition: changing them is
reported, not resubmitted (`--force` resubmits)."""


def _canonical_hash(data: dict[str, Any]) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace, empty sub-objects dropped), with an
    empty transcription_config always present so that {} and no config hash alike."""
    data = _prune_empty(data)
    if "transcription_config" not in data:
        data["transcription_config"] = {}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def check_extra(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """`extra` holds only keys the models do not name: one value has one place."""
    named = sorted(set(value or {}) & set(TranscriptionConfig.model_fields))
    if named:
        raise ValueError(f"{named[0]} is a named setting: give it as such, not in extra")
    return value


class JobSettings(BaseModel):
    """Everything that decides what a job produces; two files with equal settings hash alike.

    Treat instances as immutable (including `metadata`): the settings hash is computed once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    transcription_config: TranscriptionConfig
    tracking: Tracking | None = None
    output_config: OutputConfig | None = None
    model_code: str = DEFAULT_MODEL_CODE
    metadata: dict[str, Any] | None = None
    # transcription_config keys the models do not name, sent as given (see WireTranscriptionConfig)
    extra: dict[str, Any] | None = None

    @field_validator("extra")
    @classmethod
    def _extra_names_no_known_field(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_extra(value)

    @field_validator("model_code")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in SUPPORTED_MODEL_CODES:
            allowed = ", ".join(sorted(SUPPORTED_MODEL_CODES))
            raise ValueError(f"unknown model code {quote(value[:80])} (supported: {allowed})")
        return value

    @cached_property
    def _settings_hash(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True)
        output_config = data.get("output_config")
        if isinstance(output_config, dict):
            data["output_config"] = _prune_empty(output_config)
        return _canonical_hash(data)

    def settings_hash(self) -> str:
        """Stable hash of all the settings, as sent: the ledger compares it with a rerun's to tell
        that a file's labels (tracking, metadata) or output shaping changed since its job was made.

        sha256 of canonical JSON (sorted keys, no whitespace, None and empty sub-objects dropped).
        """
        return self._settings_hash

    @cached_property
    def _recognition_hash(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True, include=set(RECOGNITION_FIELDS))
        return _canonical_hash(data)

    def recognition_hash(self) -> str:
        """Hash of the settings that change what is recognised (RECOGNITION_FIELDS), the part of
        the settings in a file's identity: a new language is a new job; a new tag is not."""
        return self._recognition_hash

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Copy without the cached hash, which an `update` would make stale."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("_settings_hash", None)
        copied.__dict__.pop("_recognition_hash", None)
        return copied

    def merged_over(self, defaults: JobSettings) -> JobSettings:
        """These (row) settings laid over run-wide defaults, field by field.

        A field left unset (None) keeps the default, so a row cannot clear a default; nested
        objects merge per field, `metadata` and `extra` merge shallowly, `model_code` wins only if set.
        """
        output_config = defaults.output_config
        if self.output_config is not None:
            srt = _merge(
                defaults.output_config.srt_overrides if defaults.output_config else None,
                self.output_config.srt_overrides,
            )
            output_config = OutputConfig.model_construct(srt_overrides=srt)
        metadata = defaults.metadata
        if self.metadata is not None:
            metadata = {**(defaults.metadata or {}), **self.metadata}
        extra = defaults.extra
        if self.extra is not None:
            extra = {**(defaults.extra or {}), **self.extra}
        return JobSettings.model_construct(
            transcription_config=_merge(defaults.transcription_config, self.transcription_config),
            tracking=_merge(defaults.tracking, self.tracking),
            output_config=output_config,
            model_code=self.model_code if "model_code" in self.model_fields_set else defaults.model_code,
            metadata=metadata,
            extra=extra,
        )

    def wire_transcription_config(self) -> WireTranscriptionConfig:
        """The transcription_config to send: the named fields with the `extra` keys beside them."""
        return WireTranscriptionConfig.of(self.transcription_config, self.extra)


_set = object.__setattr__


@dataclass(frozen=True, init=False)
class FileSpec:
    """A row that passed every local check; the runner may act on it without looking again.

    The path is kept as the text it was checked as (`path_text`); the `Path` is built on first use
    of `path`: a million-row manifest, or a rerun that skips every row, never needs one, and
    building it cost a fifth of the time of reading a manifest. A changed copy is built with the
    constructor (which takes a Path or a str), not with dataclasses.replace.
    """

    source: str  # display name of the source: manifest path as given, directory, or "-"
    line: int | None  # 1-based manifest line (CSV: first physical line of the record); None for walks
    path_text: str  # absolute and normalised; symlinks not resolved
    size: int
    mtime_ns: int
    job_id: str | None  # only when the row gives one
    settings: JobSettings
    relative_path: str  # relative to the source root, '/'-separated; lays out transcripts later
    remote: RemoteObject | None = None  # audio named by URL (then path_text is that URL, no query)
    _path: Path | None = field(default=None, init=False, compare=False, repr=False)

    def __init__(
        self,
        source: str,
        line: int | None,
        path: Path | str,
        size: int,
        mtime_ns: int,
        job_id: str | None,
        settings: JobSettings,
        relative_path: str,
        remote: RemoteObject | None = None,
    ) -> None:
        text, built = (path, None) if isinstance(path, str) else (str(path), path)
        # One assignment of the whole instance dict: each field set on its own through the frozen
        # class's object.__setattr__ was a twentieth of a manifest row.
        _set(
            self,
            "__dict__",
            {
                "source": source,
                "line": line,
                "path_text": text,
                "size": size,
                "mtime_ns": mtime_ns,
                "job_id": job_id,
                "settings": settings,
                "relative_path": relative_path,
                "remote": remote,
                "_path": built,
            },
        )

    @property
    def is_remote(self) -> bool:
        """Named by URL: the service fetches it; no byte of it passes through this host."""
        return self.remote is not None

    @property
    def upload_bytes(self) -> int:
        """What its upload moves over this host's link: its size, or nothing for a URL row."""
        return 0 if self.is_remote else self.size

    @property
    def path(self) -> Path:
        """The file as a Path (built once, on first use)."""
        path = self._path
        if path is None:
            path = Path(self.path_text)
            _set(self, "_path", path)
        return path


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that failed validation; reported, never fatal to the rest of the run."""

    source: str
    line: int | None
    path: str | None
    reason: str  # one short line

    def message(self) -> str:
        """One log line, e.g. "manifest.csv:12: /abs/a.wav: file not found"."""
        where = (
            escape_control(self.source) if self.line is None else f"{escape_control(self.source)}:{self.line}"
        )
        parts = [where]
        if self.path is not None:
            parts.append(escape_control(self.path))
        parts.append(escape_control(self.reason))
        return ": ".join(parts)


Row = FileSpec | Rejection
