"""`report`: per-file results from the ledger (`export`), or one file's whole story (`history`).

The export gives one line per file as it stands; when something went wrong with
one file a user wants everything the ledger knows about it: each step's time, attempts, the server's
last word, and every earlier job it had (`--force`, `retry-failed`). Built from the ledger's reads
(`Ledger.stories_at`, `stories_of_job`, `rejections_at`), so it reads any backend the same way; those
are read-only and take no lock, so the history works while a run holds the ledger.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from pipeline.config.settings import Settings
from pipeline.errors import ConfigError
from pipeline.flow.admission import JOB_FAILED
from pipeline.ledger import FileRecord, FileState, FileStory, Ledger, StepTimes, ledger_missing, open_ledger

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

EXPORT_BATCH = 1000  # ledger rows read per hop to the worker thread


@functools.cache
def _field_names(shown: type[DataclassInstance]) -> tuple[str, ...]:
    """A dataclass's field names, in order; read once per class (an export makes a row per file)."""
    return tuple(f.name for f in dataclasses.fields(shown))


# Step names in the report, in the order a file goes through them.
STEPS = _field_names(StepTimes)


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
    transcripts: list[str]  # the transcript files fetch wrote, as written
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


def _shown_values(shown: type[DataclassInstance], record: FileRecord, **given: Any) -> dict[str, Any]:
    """The fields of the dataclass `shown`, in its order: those `given`, and each other one the
    record's field of the same name, as stored."""
    return {name: given[name] if name in given else getattr(record, name) for name in _field_names(shown)}


def _file(story: FileStory) -> FileHistory:
    record = story.record
    values = _shown_values(
        FileHistory,
        record,
        state=record.state.value,
        fetched_formats=[f for f in (record.fetched_formats or "").split(",") if f],
        transcripts=record.transcript_paths,
        times={name: instant(getattr(story.times, name)) for name in STEPS},
        jobs=[EarlierJob(j.job_id, j.state, j.reason, instant(j.replaced_at)) for j in story.replaced],
    )
    return FileHistory(**values)


def shown_state(record: FileRecord) -> str:
    """The state a report gives a file: `failed` also when its job FAILED on the server (the
    ledger's state is then `created`: the job exists; it did not succeed)."""
    return FileState.FAILED.value if record.job_status == JOB_FAILED else record.state.value


@dataclass
class ExportRow:
    """One line of `report`'s export: its columns, in order. A rejected row, never admitted, has
    no job, no object and no attempts (the defaults)."""

    source: str
    line: int | None
    path: str | None
    state: str
    job_id: str | None = None
    s3_key: str | None = None
    size: int | None = None
    md5: str | None = None
    attempts: int = 0
    error_class: str | None = None
    error: str | None = None
    server_status: str | None = None  # the server's job status, as last seen
    server_message: str | None = None  # its error message for a FAILED job
    transcripts: list[str] = field(default_factory=list)


EXPORT_COLUMNS = _field_names(ExportRow)


def _record_row(record: FileRecord) -> dict[str, Any]:
    return _shown_values(
        ExportRow,
        record,
        state=shown_state(record),
        server_status=record.job_status,
        server_message=record.job_error,
        transcripts=record.transcript_paths,
    )


def export_rows(ledger: Ledger, states: Iterable[str] | None) -> Iterator[dict[str, Any]]:
    """Per-file results from the ledger; rejected rows come from the rejection log. `states` are
    the states a report shows (`shown_state`): `failed` takes in jobs that FAILED on the server."""
    wanted = set(states or ())
    file_states = wanted - {"rejected"}
    if not wanted or file_states:
        # a server-FAILED job is `created` in the ledger: read those too, then keep what is wanted
        stored = file_states | ({FileState.CREATED.value} if FileState.FAILED.value in file_states else set())
        for record in ledger.records(sorted(stored) or None):
            row = _record_row(record)
            if not file_states or row["state"] in file_states:
                yield row
    if not wanted or "rejected" in wanted:
        for source, line, path, reason in ledger.rejections():
            yield vars(ExportRow(source, line, path, "rejected", error_class="input", error=reason))


async def export(settings: Settings, *, states: Iterable[str] | None = None) -> AsyncIterator[dict[str, Any]]:
    """`report`: per-file results from the ledger (one dict per file, and per rejected row), read
    a batch at a time on a worker thread: a big ledger never sits in memory, the loop never blocks."""
    ledger = _readable(settings)
    rows = export_rows(ledger, states)
    while batch := await anyio.to_thread.run_sync(lambda: list(itertools.islice(rows, EXPORT_BATCH))):
        for row in batch:
            yield row


async def history(settings: Settings, *, path: str | None = None, job_id: str | None = None) -> History:
    """`report --path/--job-id`: one file's whole history (every record, earlier jobs, rejections)."""
    ledger = _readable(settings)
    return await anyio.to_thread.run_sync(lambda: file_history(ledger, path=path, job_id=job_id))


def _readable(settings: Settings) -> Ledger:
    """The ledger, for reading only: not opened (opening takes nothing, but could migrate, a write)."""
    if ledger_missing(settings.ledger):
        raise ConfigError(f"no ledger at {settings.ledger}")
    return open_ledger(settings.ledger)
