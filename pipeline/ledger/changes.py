"""One file's state changes along its journey, each written once for both backends.

A `Change` is the columns a step sets; each backend renders it in its own dialect (SQLite's `?`,
PostgreSQL's `%s`, which also stamps the host), and `applied()` is the record it leaves, which the
SQLite ledger hands back without reading the row again (PostgreSQL reads it back with RETURNING).
The text both backends store from other people's input is cleaned here too, once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.ledger.records import FileRecord, FileState
from pipeline.redact import redact
from pipeline.sources.rows import Rejection, escape_control

ERROR_LIMIT = 2000  # characters of an error message kept
_RECORD_FIELDS = frozenset(field.name for field in dataclasses.fields(FileRecord))


@dataclass(frozen=True, slots=True)
class Change:
    record: FileRecord
    columns: Mapping[str, Any]

    def update(self, mark: str, **also: Any) -> tuple[str, tuple[Any, ...]]:
        """The UPDATE of the file's row in a dialect whose parameter mark is `mark`; `also`: more
        columns that backend keeps (not part of the record)."""
        columns = {**self.columns, **also}
        sets = ", ".join(f"{name} = {mark}" for name in columns)
        values = tuple(value.value if isinstance(value, FileState) else value for value in columns.values())
        return f"UPDATE files SET {sets} WHERE id = {mark}", (*values, self.record.id)

    def applied(self) -> FileRecord:
        """The record after the change."""
        return dataclasses.replace(
            self.record, **{name: value for name, value in self.columns.items() if name in _RECORD_FIELDS}
        )


def attempt_counted(record: FileRecord) -> Change:
    return Change(record, {"attempts": record.attempts + 1})


def restarted(record: FileRecord, now: float) -> Change:
    """A failed file starts over with the same job_id; its error is cleared."""
    return Change(record, {"state": FileState.PENDING, "error": None, "error_class": None, "updated_at": now})


def presigned(
    record: FileRecord, s3_key: str, echo: Mapping[str, Any], attempts: int | None, now: float
) -> Change:
    columns: dict[str, Any] = {
        "state": FileState.PRESIGNED,
        "s3_key": s3_key,
        "echo_json": json.dumps(dict(echo), sort_keys=True),
    }
    if attempts is not None:
        columns["attempts"] = attempts
    return Change(record, columns | {"presigned_at": now, "updated_at": now})


def uploaded(record: FileRecord, md5: str, now: float) -> Change:
    return Change(record, {"state": FileState.UPLOADED, "md5": md5, "uploaded_at": now, "updated_at": now})


def creating(record: FileRecord, attempts: int, now: float) -> Change:
    columns = {"state": FileState.CREATING, "attempts": attempts, "create_sent_at": now, "updated_at": now}
    return Change(record, columns)


def created(record: FileRecord, now: float) -> Change:
    columns = {"state": FileState.CREATED, "error": None, "error_class": None, "created_at": now}
    return Change(record, columns | {"updated_at": now})


def failed(record: FileRecord, error: str, error_class: str, now: float) -> Change:
    columns = {"state": FileState.FAILED, "error": clean_error(error), "error_class": error_class}
    return Change(record, columns | {"updated_at": now})


# What a file's current job left behind: cleared when the file moves on to another job.
_JOB_TRACES = {
    "error": None,
    "error_class": None,
    "job_status": None,
    "job_error": None,
    "fetched_formats": None,
    "transcripts": None,
    "fetched_at": None,
}


def renewed(record: FileRecord, new_job_id: str, now: float) -> Change:
    """A new job for the file (--force, retry-failed): it starts over from its first step."""
    columns = {"job_id": new_job_id, "generation": record.generation + 1, "state": FileState.PENDING}
    steps = dict.fromkeys(
        ("s3_key", "echo_json", "md5", "presigned_at", "uploaded_at", "create_sent_at", "created_at")
    )
    cleared = {"status_checked_at": None, "server_deleted_at": None}
    return Change(record, columns | steps | _JOB_TRACES | cleared | {"updated_at": now})


def adopted(record: FileRecord, job_id: str, generation: int, now: float) -> Change:
    """A later job of the file's own, found on the server (reconcile): it is created."""
    columns = {"job_id": job_id, "generation": generation, "state": FileState.CREATED}
    return Change(record, columns | _JOB_TRACES | {"created_at": now, "updated_at": now})


def clean_error(error: str) -> str:
    """Errors are stored redacted, on one printable line, bounded."""
    return escape_control(redact(error))[:ERROR_LIMIT]


def server_message(error: str | None) -> str | None:
    """The server's message of a FAILED job, redacted and bounded."""
    return redact(error)[:ERROR_LIMIT] if error else None


def stored_rejection(rejection: Rejection) -> tuple[str, int | None, str | None, str]:
    """A refused row as it is stored: text from other people's manifests escaped, so it stores as
    UTF-8 and prints on one line; the reason redacted."""
    path = escape_control(rejection.path) if rejection.path is not None else None
    return escape_control(rejection.source), rejection.line, path, escape_control(redact(rejection.reason))
