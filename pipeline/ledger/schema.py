"""The SQLite ledger's tables and their migrations, and how its connections are opened.

Migrations only ever append: a ledger written by an older slng-bulk is brought up to date on open,
one transaction per step; a ledger from a newer one is refused rather than misread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.ledger import rekey
from pipeline.ledger.records import FileRecord, FileState, FileStory, HistoryKind, ReplacedJob, StepTimes
from pipeline.sources.rows import FileSpec


def _rekey(conn: sqlite3.Connection) -> None:
    """Migration 5's second half: every file's key recomputed (`pipeline.ledger.rekey`)."""
    select = rekey.SELECT_BATCH.format(p="?")
    update = rekey.UPDATE_KEY.format(p="?")
    for created in (1, 0):
        before = rekey.NO_ID_ABOVE
        while rows := conn.execute(select, (created, before, rekey.REKEY_BATCH)).fetchall():
            conn.executemany(update, rekey.new_keys(rows))
            before = rows[-1][0]


MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    # 1: files, rejections, runs, job history
    """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        file_key TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        line INTEGER,
        path TEXT NOT NULL,
        relative_path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        settings_hash TEXT NOT NULL,
        settings_json TEXT NOT NULL,
        state TEXT NOT NULL,
        job_id TEXT NOT NULL UNIQUE,
        generation INTEGER NOT NULL DEFAULT 0,
        s3_key TEXT,
        echo_json TEXT,
        md5 TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        error_class TEXT,
        seen_run TEXT,
        admitted_at REAL NOT NULL,
        presigned_at REAL,
        uploaded_at REAL,
        create_sent_at REAL,
        created_at REAL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX files_state ON files(state);
    CREATE TABLE rejections (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        source TEXT NOT NULL,
        line INTEGER,
        path TEXT,
        reason TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX rejections_run ON rejections(run_id);
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        finished_at REAL,
        summary_json TEXT
    );
    CREATE TABLE job_history (
        id INTEGER PRIMARY KEY,
        file_id INTEGER NOT NULL REFERENCES files(id),
        job_id TEXT NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        replaced_at REAL NOT NULL
    );
    """,
    # 2: follow-through: the server's view of each job, and what was fetched
    """
    ALTER TABLE files ADD COLUMN job_status TEXT;
    ALTER TABLE files ADD COLUMN job_error TEXT;
    ALTER TABLE files ADD COLUMN status_checked_at REAL;
    ALTER TABLE files ADD COLUMN fetched_formats TEXT;
    ALTER TABLE files ADD COLUMN fetched_at REAL;
    ALTER TABLE files ADD COLUMN server_deleted_at REAL;
    CREATE INDEX files_job_status ON files(job_status);
    """,
    # 3: a typed kind (HistoryKind) for each history entry: code reads the kind, while job_history.error
    # keeps the reason for people. Older entries get their kind from the reason texts earlier versions
    # wrote, once, here.
    """
    ALTER TABLE job_history ADD COLUMN kind TEXT;
    UPDATE job_history SET kind = CASE
        WHEN error LIKE 'job FAILED on the server%' THEN 'retry_failed'
        WHEN error LIKE 'resubmitted (--force)%' THEN 'forced'
        WHEN error LIKE 'reconcile:%' THEN 'reconciled'
    END;
    CREATE INDEX job_history_file ON job_history(file_id);
    """,
    # 4: audio named by URL: `path` holds the URL without its query, and this the object's version
    # (S3 version id, else its ETag) where a local file has its mtime; NULL for local files.
    """
    ALTER TABLE files ADD COLUMN object_version TEXT;
    """,
    # 5: the transcript files fetch wrote (a JSON list of paths), and (6) identity by the
    # recognition settings only: each key recomputed, the old one kept as the seed of the file's
    # later job ids (pipeline.ledger.rekey).
    """
    ALTER TABLE files ADD COLUMN transcripts TEXT;
    ALTER TABLE files ADD COLUMN job_seed TEXT;
    """,
    _rekey,
)

FILE_COLUMNS = (
    "id, file_key, source, line, path, relative_path, size, mtime_ns, settings_hash, settings_json, "
    "state, job_id, generation, s3_key, echo_json, md5, attempts, error, error_class, seen_run, "
    "job_status, job_error, fetched_formats, created_at, object_version, transcripts, job_seed"
)
# What the producer's batched glance reads of each known file, in `Glance`'s order after the key.
GLANCE_COLUMNS = "file_key, state, error_class, job_id, COALESCE(error, job_error), job_status, settings_hash"
# What `admit` and `enqueue` insert for a new file, in `identity_columns`' order.
IDENTITY_COLUMNS = (
    "file_key, source, line, path, relative_path, size, mtime_ns, settings_hash, settings_json,"
    " object_version"
)


_FILE_COLUMN_COUNT = len(FILE_COLUMNS.split(","))
# One file's story, for both backends: the record, its step times (StepTimes.x is column x_at), the
# jobs it gave up, and the rejections under its path.
STORY_COLUMNS = FILE_COLUMNS + ", " + ", ".join(f"{f.name}_at" for f in dataclasses.fields(StepTimes))
REPLACED_COLUMNS = "file_id, job_id, state, kind, error, replaced_at"
REJECTION_COLUMNS = "source, line, path, reason, run_id, at"
_KINDS = {kind.value: kind for kind in HistoryKind}


def record_from_row(row: Sequence[Any]) -> FileRecord:
    """A FileRecord from a row of FILE_COLUMNS, in that order."""
    values = list(row)
    values[10] = FileState(values[10])
    return FileRecord(*values)


def stories_from_rows(files: Iterable[Sequence[Any]], replaced: Iterable[Sequence[Any]]) -> list[FileStory]:
    """FileStories from rows of STORY_COLUMNS and the job_history rows (REPLACED_COLUMNS, oldest
    first) of those files."""
    earlier: dict[int, list[ReplacedJob]] = {}
    for file_id, job_id, state, kind, reason, at in replaced:
        earlier.setdefault(file_id, []).append(ReplacedJob(job_id, state, _KINDS.get(kind), reason, at))
    return [
        FileStory(
            record_from_row(row[:_FILE_COLUMN_COUNT]),
            StepTimes(*row[_FILE_COLUMN_COUNT:]),
            tuple(earlier.get(row[0], ())),
        )
        for row in files
    ]


WAL_SIZE_LIMIT = 256 * 1024  # bytes the WAL file is cut back to when SQLite starts it over


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, full fsync."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection (SQLite's `mode=ro`): it can neither write nor create the file, and
    takes only SQLite's shared read lock, so reports read beside a run's writer."""
    uri = path.resolve().as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None, check_same_thread=False)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date, one transaction per migration."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise ConfigError(
            f"ledger schema version {version} is newer than this slng-bulk understands "
            f"({len(MIGRATIONS)}); upgrade slng-bulk"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with transaction(conn):
            if callable(script):
                script(conn)
            else:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back whatever is open, without masking the error that led here.

    On a full disk SQLite has rolled back already: a second ROLLBACK would only replace the real
    cause with "cannot rollback - no transaction is active".
    """
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error without masking it (`rollback`)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def transcripts_json(paths: Sequence[str]) -> str | None:
    """The `transcripts` column: a JSON list of the files fetch wrote, None for none."""
    return json.dumps(list(paths)) if paths else None


def identity_columns(spec: FileSpec, file_key: str) -> tuple[Any, ...]:
    """A new file's IDENTITY_COLUMNS, in that order: what both backends' `admit` (and PostgreSQL's
    `enqueue`) insert for it."""
    return (
        file_key,
        spec.source,
        spec.line,
        spec.path_text,
        spec.relative_path,
        spec.size,
        spec.mtime_ns,
        spec.settings.settings_hash(),
        spec.settings.model_dump_json(exclude_none=True),
        spec.remote.version if spec.remote is not None else None,
    )
