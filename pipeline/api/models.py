"""Request and response types of the SLNG Batch API.

Written from the public OpenAPI document (version 0.1.0) and the batch guide. The client and the
sandbox both use these types, so a response the sandbox sends is, by construction, one the client
can read. Response models ignore unknown fields (the API may grow); request models forbid them
(a typo in our own code must fail loudly, not be silently dropped by the server).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

DEFAULT_MODEL_CODE: Final = "slng/speechmatics/batch:15.0.0"
SUPPORTED_MODEL_CODES: Final = frozenset({DEFAULT_MODEL_CODE})
AUDIO_EXTENSIONS: Final = frozenset({"wav", "mp3", "flac", "aac", "ogg", "m4a", "mp4", "amr", "mpeg"})
MAX_FILE_BYTES: Final = 1_000_000_000  # "1 GB" as documented; decimal, the conservative reading
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
JOB_ID_PATTERN: Final = re.compile(r"^[a-zA-Z0-9]+$")

JobId = Annotated[str, Field(pattern=r"^[a-zA-Z0-9]+$", min_length=1, max_length=128)]

JobStatus = Literal["QUEUED", "IN_PROGRESS", "DECODING", "POST_PROCESSING", "DONE", "FAILED", "DELETED"]
TERMINAL_STATUSES: Final = frozenset({"DONE", "FAILED", "DELETED"})
LISTABLE_STATUSES: Final = ("QUEUED", "IN_PROGRESS", "DECODING", "DONE", "FAILED", "DELETED")
OutputFormat = Literal["json", "txt", "srt"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- shared objects -------------------------------------------------------------------------------


class VocabItem(_Request):
    content: str
    sounds_like: list[str] | None = None


class TranscriptionConfig(_Request):
    """Transcription settings; every field optional, the server fills in defaults."""

    language: str | None = Field(default=None, min_length=1, max_length=32)
    operating_point: Literal["standard", "enhanced"] | None = None
    diarization: Literal["none", "speaker", "channel"] | None = None
    domain: str | None = None
    output_locale: str | None = None
    enable_entities: bool | None = None
    additional_vocab: list[VocabItem] | None = None


class WireTranscriptionConfig(TranscriptionConfig):
    """The transcription_config as sent: the named fields plus keys the models do not name.

    The public schema leaves this object open, and the service grows options (language
    identification, translation, summaries...) faster than this package: a user passes those
    through `extra` and they are sent as given, never dropped or refused on the client's side.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    @classmethod
    def of(
        cls, config: TranscriptionConfig, extra: Mapping[str, Any] | None = None
    ) -> WireTranscriptionConfig:
        """The wire form; for a config without extra keys, the one built before for an equal config
        (each file's presign and create send it, and the rows of a run nearly always share one)."""
        if isinstance(config, cls) and not extra:
            return config
        if not extra:
            try:
                return _wire_form(config)
            except TypeError:  # unhashable (a vocabulary list): built afresh
                pass
        return cls.model_validate({**(extra or {}), **config.model_dump(exclude_none=True)})


@functools.lru_cache(maxsize=256)
def _wire_form(config: TranscriptionConfig) -> WireTranscriptionConfig:
    """Shared safely: both models are frozen. Bounded: a few distinct configs per run at most."""
    return WireTranscriptionConfig.model_validate(config.model_dump(exclude_none=True))


class Tracking(_Request):
    title: str | None = None
    reference: str | None = None
    tags: list[str] | None = None
    details: str | None = None


class SrtOverrides(_Request):
    max_line_length: int | None = Field(default=None, ge=1, le=1000)
    max_lines: int | None = Field(default=None, ge=1, le=100)


class OutputConfig(_Request):
    srt_overrides: SrtOverrides | None = None


# --- requests -------------------------------------------------------------------------------------


class _JobRequest(_Request):
    """What every create-style request carries."""

    job_id: JobId | None = None
    transcription_config: WireTranscriptionConfig
    tracking: Tracking | None = None
    output_config: OutputConfig | None = None

    @field_validator("transcription_config", mode="before")
    @classmethod
    def _as_wire(cls, value: object) -> object:
        """A strict TranscriptionConfig (what rows hold) is accepted as is, without extra keys."""
        if isinstance(value, TranscriptionConfig):
            return WireTranscriptionConfig.of(value)
        return value


class PresignRequest(_JobRequest):
    """Presign step 1: ask for an upload URL. No job exists yet (model_code and metadata go in step 3)."""

    mode: Literal["presign"] = "presign"
    filename: str = Field(min_length=1)
    content_type: str | None = None


class _CreateRequest(_JobRequest):
    model_code: str | None = None
    metadata: dict[str, Any] | None = None


class CreateFromUploadRequest(_CreateRequest):
    """Presign step 3: create the job from the uploaded object."""

    s3_key: str = Field(min_length=1)


class CreateFromUrlRequest(_CreateRequest):
    """Create a job that the service downloads itself (HTTPS URL)."""

    input_url: str = Field(min_length=1)


# --- responses ------------------------------------------------------------------------------------


class ErrorBody(_Response):
    error: str


def _canonical_status(value: Any) -> Any:
    """Statuses as the spec spells them (`QUEUED`, `DONE`): a server that says "done" or "Done"
    means the same thing, and every comparison in the client is against the spelled form."""
    return value.strip().upper() if isinstance(value, str) else value


CanonicalStatus = Annotated[str, BeforeValidator(_canonical_status)]


class JobAcknowledgement(_Response):
    job_id: str
    status: CanonicalStatus


class UploadTarget(_Response):
    url: str
    s3_key: str
    s3_uri: str | None = None
    expires_in: int = 1800
    headers: dict[str, str] | None = None


class PresignResponse(_Response):
    """Presign step 1 answer. Older servers sent only job_id and upload{url, s3_key, expires_in}."""

    job_id: str
    transcription_config: dict[str, Any] | None = None
    tracking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    input_s3_uri: str | None = None
    output_s3_prefix: str | None = None
    upload: UploadTarget


class JobError(_Response):
    message: str


class BatchJob(_Response):
    job_id: str
    status: CanonicalStatus  # kept open: an unknown status must be readable (and treated as non-terminal)
    api_key_id: str | None = None
    organisation_id: str | None = None
    model_code: str | None = None
    job_config: dict[str, Any] | None = None
    input_metadata: dict[str, Any] | None = None
    output_metadata: dict[str, Any] | None = None
    error_message: JobError | None = None
    submitted_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    deleted_at: str | None = None
    expired_at: str | None = None
    updated_at: str | None = None

    @field_validator("error_message", mode="before")
    @classmethod
    def _accept_plain_string(cls, value: Any) -> Any:
        # The schema says {"message": ...}; at least one client reads a plain string. Accept both.
        if isinstance(value, str):
            return {"message": value}
        return value

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class PageMeta(_Response):
    page: int
    page_size: int
    total: int
    pages: int


class JobList(_Response):
    items: list[BatchJob]
    meta: PageMeta | None = None  # some servers leave it out: then the pages end at an empty one


class JobFile(_Response):
    key: str
    s3_uri: str | None = None
    download_url: str


def _canonical_format(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class JobOutputFile(_Response):
    format: Annotated[str, BeforeValidator(_canonical_format)]  # "SRT" from a server is our "srt"
    key: str
    s3_uri: str | None = None
    download_url: str


class JobFiles(_Response):
    job_id: str
    inputs: list[JobFile] = Field(default_factory=list)
    outputs: list[JobOutputFile] = Field(default_factory=list)

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _accept_old_item_shape(cls, value: Any) -> Any:
        # An older page version listed {name, content_type, size, url}; map it onto the current shape.
        if not isinstance(value, list):
            return value
        mapped: list[Any] = []
        for item in value:
            if isinstance(item, dict) and "url" in item and "download_url" not in item:
                name = str(item.get("name", ""))
                suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
                item = {"key": name, "download_url": item["url"], "format": suffix}
            mapped.append(item)
        return mapped

    def output(self, fmt: str) -> JobOutputFile | None:
        return next((o for o in self.outputs if o.format == fmt), None)


def is_valid_job_id(job_id: str) -> bool:
    return bool(JOB_ID_PATTERN.fullmatch(job_id)) and len(job_id) <= 128
