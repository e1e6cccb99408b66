"""One file's whole story from the ledger, for `report --path` / `report --job-id`.

The export (`stats.export_rows`) gives one line per file as it stands; when something went wrong with
one file a user wants everything the ledger knows about it: each step's time, attempts, the server's
last word, and every earlier job it had (`--force`, `retry-failed`). Read-only: it opens the ledger
file in SQLite's read-only mode and takes no lock, so it works while a run holds the ledger.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Step times of a file, in the order a file goes through them: (name in the report, ledger column).
STEP_COLUMNS = (
    ("admitted", "admitted_at"),
    ("presigned", "presigned_at"),
    ("uploaded", "uploaded_at"),
    ("create_sent", "create_sent_at"),
    ("created", "created_at"),
    ("status_checked", "status_checked_at"),
    ("fetched", "fetched_at"),
    ("server_deleted", "server_deleted_at"),
    ("updated", "updated_at"),
)
_FILE_COLUMNS = (
    "id, source, line, path, relative_path, size, md5, state, job_id, generation, s3_key, attempts, "
    "error, error_class, job_status, job_error, fetched_formats, "
) + ", ".join(column for _, column in STEP_COLUMNS)


def instant(epoch: float | None) -> str | None:
    """A ledger time as ISO 8601 UTC with milliseconds (`2026-01-31T12:00:00.123Z`)."""
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


@dataclass
class EarlierJob:
    job_id: str
    state: str  # the file's state when this job was replaced
    reason: str | None  # why it was replaced (`retry-failed: <the server's message>`, `--force`)
    replaced_at: str | None


@dataclass
class FileHistory:
    path: str
    relative_path: str
    source: str
    line: int | None
    size: int
    md5: str | None
    state: str
    job_id: str
    generation: int
    s3_key: str | None
    attempts: int
    error: str | None
    error_class: str | None
    job_status: str | None
    job_error: str | None
    fetched_formats: list[str]
    times: dict[str, str | None]
    jobs: list[EarlierJob] = field(default_factory=list)  # earlier jobs, oldest first


@dataclass
class Rejected:
    source: str
    line: int | None
    path: str | None
    reason: str
    run_id: str
    at: str | None


@dataclass
class History:
    files: list[FileHistory]
    rejections: list[Rejected]

    def document(self) -> dict[str, Any]:
        return asdict(self)


def _connect_read_only(ledger: Path) -> sqlite3.Connection:
    return sqlite3.connect(ledger.resolve().as_uri() + "?mode=ro", uri=True, timeout=30.0)


def _path_forms(path: str) -> list[str]:
    """The spellings a path may be stored under: as given, and absolute (from this directory)."""
    return list(dict.fromkeys([path, str(Path(path).expanduser().absolute()), str(Path(path).resolve())]))


def file_history(ledger: Path, *, path: str | None = None, job_id: str | None = None) -> History:
    """Every ledger record of the file at `path`, or of the file that has or had `job_id`; and the
    rejections of that path. Raises sqlite3.DatabaseError when `ledger` is not a readable ledger."""
    conn = _connect_read_only(ledger)
    try:
        if job_id is not None:
            where = (
                "id IN (SELECT id FROM files WHERE job_id = ?"
                " UNION SELECT file_id FROM job_history WHERE job_id = ?)"
            )
            params: list[Any] = [job_id, job_id]
        else:
            assert path is not None
            forms = _path_forms(path)
            where = f"path IN ({','.join('?' * len(forms))})"
            params = forms
        files = [
            _file(conn, row)
            for row in conn.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE {where} ORDER BY id", params)
        ]
        rejections: list[Rejected] = []
        if path is not None:
            forms = _path_forms(path)
            rows = conn.execute(
                "SELECT source, line, path, reason, run_id, at FROM rejections"
                f" WHERE path IN ({','.join('?' * len(forms))}) ORDER BY id",
                forms,
            )
            rejections = [
                Rejected(s, line, p, reason, run, instant(at)) for s, line, p, reason, run, at in rows
            ]
        return History(files, rejections)
    finally:
        conn.close()


def _file(conn: sqlite3.Connection, row: tuple[Any, ...]) -> FileHistory:
    (
        file_id,
        source,
        line,
        path,
        relative_path,
        size,
        md5,
        state,
        job_id,
        generation,
        s3_key,
        attempts,
        error,
        error_class,
        job_status,
        job_error,
        fetched_formats,
        *step_times,
    ) = row
    earlier = [
        EarlierJob(old_job, old_state, reason, instant(at))
        for old_job, old_state, reason, at in conn.execute(
            "SELECT job_id, state, error, replaced_at FROM job_history WHERE file_id = ? ORDER BY id",
            (file_id,),
        )
    ]
    return FileHistory(
        path=path,
        relative_path=relative_path,
        source=source,
        line=line,
        size=size,
        md5=md5,
        state=state,
        job_id=job_id,
        generation=generation,
        s3_key=s3_key,
        attempts=attempts,
        error=error,
        error_class=error_class,
        job_status=job_status,
        job_error=job_error,
        fetched_formats=[f for f in (fetched_formats or "").split(",") if f],
        times={name: instant(value) for (name, _), value in zip(STEP_COLUMNS, step_times, strict=True)},
        jobs=earlier,
    )


def history_lines(history: History) -> Iterator[str]:
    """The history as plain lines for a terminal."""
    for record in history.files:
        yield f"{record.path}"
        yield f"  source {record.source}" + (f", line {record.line}" if record.line is not None else "")
        yield (
            f"  state {record.state}, job {record.job_id} (generation {record.generation}),"
            f" attempts {record.attempts}"
        )
        if record.job_status:
            yield f"  server status {record.job_status}" + (
                f": {record.job_error}" if record.job_error else ""
            )
        if record.error:
            yield f"  last error ({record.error_class or 'unknown'}): {record.error}"
        if record.fetched_formats:
            yield f"  transcripts on disk: {', '.join(record.fetched_formats)}"
        for name, at in record.times.items():
            if at is not None:
                yield f"  {name.replace('_', ' '):<16}{at}"
        for job in record.jobs:
            yield f"  earlier job {job.job_id}: {job.state}, replaced {job.replaced_at}" + (
                f" ({job.reason})" if job.reason else ""
            )
    for rejection in history.rejections:
        where = (
            f"{rejection.source}, line {rejection.line}" if rejection.line is not None else rejection.source
        )
        yield f"rejected {rejection.path} ({where}) at {rejection.at}: {rejection.reason}"
