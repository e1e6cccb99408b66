"""One file's whole story from the ledger, for `report --path` / `report --job-id`.

The export (`stats.export_rows`) gives one line per file as it stands; when something went wrong with
one file a user wants everything the ledger knows about it: each step's time, attempts, the server's
last word, and every earlier job it had (`--force`, `retry-failed`). Built from the ledger's reads
(`Ledger.stories_at`, `stories_of_job`, `rejections_at`), so it reads any backend the same way; those
are read-only and take no lock, so the history works while a run holds the ledger.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.ledger import FileStory, Ledger, StepTimes

# Step names in the report, in the order a file goes through them.
STEPS = tuple(f.name for f in dataclasses.fields(StepTimes))


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


def _path_forms(path: str) -> list[str]:
    """The spellings a path may be stored under: as given, absolute from this directory (`..`
    folded, as sources store it), and with links resolved. A spelling that cannot be made (`~nobody`,
    a link loop) is left out: the others may still match."""
    forms = [path]
    spellings: tuple[Callable[[], str], ...] = (
        lambda: os.path.abspath(os.path.expanduser(path)),
        lambda: str(Path(path).expanduser().absolute()),
        lambda: str(Path(path).resolve()),
    )
    for spell in spellings:
        try:
            forms.append(spell())
        except (RuntimeError, OSError):
            continue
    return list(dict.fromkeys(forms))


def file_history(ledger: Ledger, *, path: str | None = None, job_id: str | None = None) -> History:
    """Every ledger record of the file at `path`, or of the file that has or had `job_id`; and the
    rejections of that path. `ledger` need not be open. Not a readable ledger: sqlite3.DatabaseError
    or ConfigError, as the backend's other reads."""
    if job_id is not None:
        return History([_file(story) for story in ledger.stories_of_job(job_id)], [])
    assert path is not None
    forms = _path_forms(path)
    rejections = [
        Rejected(r.source, r.line, r.path, r.reason, r.run_id, instant(r.at))
        for r in ledger.rejections_at(forms)
    ]
    return History([_file(story) for story in ledger.stories_at(forms)], rejections)


def _file(story: FileStory) -> FileHistory:
    record = story.record
    return FileHistory(
        path=record.path,
        relative_path=record.relative_path,
        source=record.source,
        line=record.line,
        size=record.size,
        md5=record.md5,
        state=record.state.value,
        job_id=record.job_id,
        generation=record.generation,
        s3_key=record.s3_key,
        attempts=record.attempts,
        error=record.error,
        error_class=record.error_class,
        job_status=record.job_status,
        job_error=record.job_error,
        fetched_formats=[f for f in (record.fetched_formats or "").split(",") if f],
        times={name: instant(getattr(story.times, name)) for name in STEPS},
        jobs=[EarlierJob(j.job_id, j.state, j.reason, instant(j.replaced_at)) for j in story.replaced],
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
