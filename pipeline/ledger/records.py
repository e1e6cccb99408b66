"""What the ledger knows about a file, as plain values shared by every backend.

Records are immutable: a ledger operation that changes a file returns a new record, so a caller
never sees its copy change behind its back, and two tasks never share a half-updated one.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

# What the package re-exports (pipeline.ledger): every name here is part of the ledger's interface.
__all__ = [
    "CHANGED",
    "RESUMABLE_STATES",
    "Admission",
    "FileRecord",
    "FileState",
    "FileStory",
    "Glance",
    "HistoryKind",
    "Rejected",
    "RejectionRecord",
    "ReplacedJob",
    "StepTimes",
]


class FileState(enum.StrEnum):
    PENDING = "pending"  # admitted, job_id chosen, nothing remote done yet
    PRESIGNED = "presigned"  # an upload URL was issued (not stored: it is a credential)
    UPLOADED = "uploaded"  # the object is in the bucket, MD5 verified
    CREATING = "creating"  # create sent; outcome unknown until confirmed
    CREATED = "created"  # the job exists on the server
    FAILED = "failed"  # a permanent error; see error / error_class


RESUMABLE_STATES = (FileState.PENDING, FileState.PRESIGNED, FileState.UPLOADED, FileState.CREATING)

CHANGED = "changed"
"""The error_class of a file that changed while it was uploaded (not an API error class): it is
failed for this run and taken again by the next one, once it has settled."""


class HistoryKind(enum.StrEnum):
    """Why a file gave up a job for another one. Stored typed, so code never parses a reason text."""

    FORCED = "forced"  # --force resubmitted a created or failed file as a new job
    RETRY_FAILED = "retry_failed"  # retry-failed: the server said the job FAILED
    RECONCILED = "reconciled"  # reconcile found a later job of the file on the server and adopted it


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One file as the ledger last recorded it."""

    id: int
    file_key: str
    source: str
    line: int | None
    path: str
    relative_path: str
    size: int
    mtime_ns: int
    settings_hash: str
    settings_json: str
    state: FileState
    job_id: str
    generation: int
    s3_key: str | None
    echo_json: str | None
    md5: str | None
    attempts: int
    error: str | None
    error_class: str | None  # an ErrorClass value, CHANGED, or None
    seen_run: str | None
    job_status: str | None = None  # the server's status, as last seen (QUEUED ... DONE, FAILED)
    job_error: str | None = None  # the server's error_message for a FAILED job
    fetched_formats: str | None = None  # comma list of transcript formats on disk
    created_at: float | None = None
    object_version: str | None = None  # a URL row's S3 version id or ETag (path is then its URL)
    transcripts: str | None = None  # JSON list of the transcript files fetch wrote, as written
    job_seed: str | None = None  # the key its job ids derive from, when not file_key (re-keyed)

    @property
    def id_seed(self) -> str:
        """What this file's later job ids (`derive_job_id`) derive from: its key when it was
        first admitted (a ledger re-keyed by an upgrade keeps the old one, so its jobs still match)."""
        return self.job_seed or self.file_key

    @property
    def transcript_paths(self) -> list[str]:
        """The transcript files fetch wrote for the current job, oldest first."""
        return list(json.loads(self.transcripts)) if self.transcripts else []

    def glance(self) -> Glance:
        """What the skip decision needs of this record, as the backends' batched glance reads it
        (the error: the file's own, else its job's server message)."""
        error = self.error if self.error is not None else self.job_error
        return Glance(self.state, self.error_class, self.job_id, error, self.job_status, self.settings_hash)

    @property
    def echo(self) -> dict[str, Any]:
        """The settings the presign answer echoed back; the create sends them again."""
        return dict(json.loads(self.echo_json)) if self.echo_json else {}


class Glance(NamedTuple):
    """A file's state as the skip decision needs it, and what a failure said, to report it again."""

    state: FileState
    error_class: str | None
    job_id: str
    error: str | None = None  # the file's error, or else its job's server message
    job_status: str | None = None  # the server's status, as last seen (FAILED: reported again)
    settings_hash: str | None = None  # all the settings its job was made with (labels changed?)


@dataclass(frozen=True, slots=True)
class Admission:
    """The ledger's answer for an incoming row: the record to work on, or why the row is refused."""

    record: FileRecord | None
    refusal: str | None = None


class Rejected(NamedTuple):
    """A row refused as bad input, as stored: (source, line, path, reason)."""

    source: str
    line: int | None
    path: str | None
    reason: str


# --- one file's whole story (`report --path/--job-id`) -------------------------------------------


@dataclass(frozen=True, slots=True)
class StepTimes:
    """When a file went through each step (epoch seconds; None: not, or not since its last renewal),
    in the order a file goes through them. Each field is the ledger column `<name>_at`."""

    admitted: float | None
    presigned: float | None
    uploaded: float | None
    create_sent: float | None
    created: float | None
    status_checked: float | None
    fetched: float | None
    server_deleted: float | None
    updated: float | None


class ReplacedJob(NamedTuple):
    """A job a file gave up for another (--force, retry-failed, reconcile), as its history keeps it."""

    job_id: str
    state: str  # the file's state when the job was replaced
    kind: HistoryKind | None  # None only for entries older slng-bulk versions wrote without one
    reason: str | None
    replaced_at: float


@dataclass(frozen=True, slots=True)
class FileStory:
    """Everything the ledger knows about one file record: the record, its step times, and every
    job it had before the current one, oldest first."""

    record: FileRecord
    times: StepTimes
    replaced: tuple[ReplacedJob, ...]


class RejectionRecord(NamedTuple):
    """A stored rejection with the run that refused the row and when (`Rejected` plus both)."""

    source: str
    line: int | None
    path: str | None
    reason: str
    run_id: str
    at: float
