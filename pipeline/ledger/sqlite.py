"""The SQLite ledger: one file beside the run, WAL mode, every write through the group-commit writer.

Reads for the skip decision use a separate connection from the producer thread (WAL lets readers
run beside the writer); reports open their own short-lived connection, read-only for one file's
history.

Presigned URLs are never stored (they are credentials): a file left in `presigned` state is simply
presigned again on the next run, with the same job_id and key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, LiteralString, Self

from pipeline.errors import ConfigError
from pipeline.ledger import changes
from pipeline.ledger.records import Admission, FileRecord, FileState, HistoryKind
from pipeline.ledger.schema import (
    FILE_COLUMNS,
    IDENTITY_COLUMNS,
    connect,
    connect_read_only,
    identity_columns,
    migrate,
    record_from_row,
    transcripts_json,
)
from pipeline.ledger.sql_ledger import SqlLedger
from pipeline.ledger.writer import GroupCommitWriter, Statement, is_storage_failure
from pipeline.redact import redact
from pipeline.sources.rows import FileSpec, Rejection

LOW_SPACE = 1 << 20  # below this much free space, an open failure says how much is left


def _archive_job(
    conn: sqlite3.Connection, record: FileRecord, kind: HistoryKind, reason: str, now: float
) -> None:
    """Keep a file's current job in its history (the reason in column `error`) before it moves on."""
    conn.execute(
        "INSERT INTO job_history(file_id, job_id, state, kind, error, replaced_at) VALUES (?,?,?,?,?,?)",
        (record.id, record.job_id, record.state.value, kind.value, reason, now),
    )


class SqliteLedger(SqlLedger):
    """The SQLite ledger at `path`. Open with `async with SqliteLedger(path) as ledger:`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._writer: GroupCommitWriter | None = None
        self._stack = AsyncExitStack()

    # --- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Open, creating or migrating the schema. Any failure here, a full disk included, is a
        ConfigError (exit 8): the ledger's path is unusable and nothing has been sent yet. Once
        open, a write that fails is a LedgerWriteError (exit 9)."""
        self._check_writable()
        try:
            self._write_conn = connect(self.path)
            self._read_conn = connect(self.path)
            migrate(self._write_conn)
        except sqlite3.DatabaseError as exc:
            self._close_connections()
            raise ConfigError(f"cannot open ledger {self.path}: {exc}{self._space_note(exc)}") from None
        except BaseException:
            self._close_connections()
            raise
        self._writer = await self._stack.enter_async_context(GroupCommitWriter(self._write_conn, self.path))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._stack.aclose()
        finally:
            self._writer = None
            self._close_connections()

    def _check_writable(self) -> None:
        """Say plainly why the ledger cannot be written, before SQLite says "unable to open"."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Owner-only from the first byte: the ledger names files and jobs of other people.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as exc:
            raise ConfigError(f"cannot open ledger {self.path}: {exc.strerror or exc}") from None
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            raise ConfigError(
                f"cannot open ledger {self.path}: its folder is not writable "
                f"(SQLite keeps {self.path.name}-wal beside it)"
            )

    def _space_note(self, exc: BaseException) -> str:
        """SQLite says "disk I/O error" when its -shm cannot grow: name the likely cause."""
        if not is_storage_failure(exc):
            return ""
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return ""
        free = st.f_bavail * st.f_frsize
        return f" ({free // 1024} KiB free on its filesystem)" if free < LOW_SPACE else ""

    def _close_connections(self) -> None:
        for conn in (self._write_conn, self._read_conn):
            if conn is not None:
                conn.close()
        self._write_conn = self._read_conn = None

    @property
    def _w(self) -> GroupCommitWriter:
        assert self._writer is not None, "ledger is not open"
        return self._writer

    async def flush(self) -> None:
        await self._w.write(lambda conn: None)

    # --- runs and rows ---------------------------------------------------------------------------

    async def start_run(self, run_id: str) -> None:
        await self._w.write(
            Statement("INSERT INTO runs(run_id, started_at) VALUES (?, ?)", (run_id, time.time()))
        )

    async def finish_run(self, run_id: str, summary: Mapping[str, Any]) -> None:
        text = redact(json.dumps(summary, sort_keys=True))
        await self._w.write(
            Statement(
                "UPDATE runs SET finished_at = ?, summary_json = ? WHERE run_id = ?",
                (time.time(), text, run_id),
            )
        )

    async def admit(self, spec: FileSpec, file_key: str, job_id: str, run_id: str) -> Admission:
        def admit(conn: sqlite3.Connection) -> Admission:
            now = time.time()
            row = conn.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE file_key = ?", (file_key,)).fetchone()
            if row is not None:
                record = record_from_row(row)
                if record.seen_run == run_id:
                    where = f"{record.source}:{record.line}" if record.line else record.source
                    return Admission(None, f"duplicate of an earlier row ({where})")
                conn.execute(
                    "UPDATE files SET seen_run = ?, source = ?, line = ?, updated_at = ? WHERE id = ?",
                    (run_id, spec.source, spec.line, now, record.id),
                )
                return Admission(
                    dataclasses.replace(record, seen_run=run_id, source=spec.source, line=spec.line)
                )
            owner = conn.execute("SELECT path FROM files WHERE job_id = ?", (job_id,)).fetchone()
            if owner is not None:
                return Admission(None, f"job_id {job_id} is already used by another file ({owner[0]})")
            cursor = conn.execute(
                f"INSERT INTO files({IDENTITY_COLUMNS}, state, job_id, seen_run, admitted_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (*identity_columns(spec, file_key), FileState.PENDING.value, job_id, run_id, now, now),
            )
            new = conn.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
            return Admission(record_from_row(new))

        # Applied, not committed, before the journey goes on: see `Ledger.admit`.
        return await self._w.write_applied(admit)

    async def reject(self, run_id: str, rejection: Rejection) -> None:
        await self._w.write_behind(
            Statement(
                "INSERT INTO rejections(run_id, source, line, path, reason, at) VALUES (?,?,?,?,?,?)",
                (run_id, *changes.stored_rejection(rejection), time.time()),
            )
        )

    # --- one file's journey ----------------------------------------------------------------------

    async def _apply(self, change: changes.Change, *, durable: bool) -> FileRecord:
        """Durable through the writer's commit, or written behind (see Ledger); either way the
        record as the change leaves it, without a read."""
        statement = Statement(*change.update("?"))
        if durable:
            await self._w.write(statement)
        else:
            await self._w.write_behind(statement)
        return change.applied()

    # --- new jobs for known files ----------------------------------------------------------------

    async def _replace_job(self, change: changes.Change, kind: HistoryKind, reason: str) -> FileRecord:
        """Keep the current job in the history and move the file on, in one durable transaction."""

        def replace(conn: sqlite3.Connection) -> None:
            _archive_job(conn, change.record, kind, reason, time.time())
            conn.execute(*change.update("?"))

        await self._w.write(replace)
        return change.applied()

    # --- the server's view -----------------------------------------------------------------------

    async def _set_job_statuses(
        self, updates: Sequence[tuple[FileRecord, str, str | None]], now: float
    ) -> list[FileRecord]:
        rows = [(status, message, now, now, record.id, record.job_id) for record, status, message in updates]

        # `AND job_id`: status may run beside a run (the lock held), which may have given the file
        # a new job since it was read; the old job's status must not land on the new one.
        def apply(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE files SET job_status = ?, job_error = ?, status_checked_at = ?, updated_at = ?"
                " WHERE id = ? AND job_id = ?",
                rows,
            )

        await self._w.write(apply)
        return [
            dataclasses.replace(record, job_status=status, job_error=message)
            for record, status, message in updates
        ]

    async def set_server_deleted(self, record: FileRecord) -> FileRecord:
        now = time.time()
        await self._w.write(
            Statement(
                "UPDATE files SET job_status = 'DELETED', server_deleted_at = ?, status_checked_at = ?,"
                " updated_at = ? WHERE id = ? AND job_id = ?",
                (now, now, now, record.id, record.job_id),
            )
        )
        return dataclasses.replace(record, job_status="DELETED")

    async def set_fetched(
        self, record: FileRecord, formats: str, transcripts: Sequence[str] = ()
    ) -> FileRecord:
        now = time.time()
        stored = transcripts_json(transcripts)
        await self._w.write(
            Statement(
                "UPDATE files SET fetched_formats = ?, transcripts = ?, fetched_at = ?, updated_at = ?"
                " WHERE id = ? AND job_id = ?",
                (formats, stored, now, now, record.id, record.job_id),
            )
        )
        return dataclasses.replace(record, fetched_formats=formats, transcripts=stored)

    # --- reads (the queries are SqlLedger's) ------------------------------------------------------

    _mark = "?"

    def _any_of(self, column: LiteralString, values: Sequence[Any]) -> tuple[LiteralString, Sequence[Any]]:
        return column + " IN (" + ",".join("?" * len(values)) + ")", list(values)

    def _rows_for_keys(self, columns: str, file_keys: Sequence[str]) -> Iterator[Sequence[Any]]:
        """`columns` of the files with these identities, one IN query per 500 keys."""
        conn = self._read_conn
        assert conn is not None, "ledger is not open"
        for start in range(0, len(file_keys), 500):
            chunk = file_keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            yield from conn.execute(f"SELECT {columns} FROM files WHERE file_key IN ({marks})", chunk)

    def _stream(self, query: str, params: Sequence[Any] = ()) -> Iterator[Sequence[Any]]:
        """Rows of one query on a connection of its own (reports may run while nothing is open)."""
        conn = connect(self.path)
        try:
            yield from conn.execute(query, params)
        finally:
            conn.close()

    def _fetch(self, query: str, params: Sequence[Any] = ()) -> Iterator[Sequence[Any]]:
        return self._stream(query, params)

    def _read_only(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Any]]:
        """Every row of each statement, from one snapshot of a read-only connection of its own."""
        conn = connect_read_only(self.path)
        try:
            conn.execute("BEGIN")  # one read transaction: a renewal between two queries is seen whole
            return [conn.execute(query, params).fetchall() for query, params in statements]
        finally:
            conn.close()

    def count_by_state(self) -> dict[str, int]:
        query = "SELECT state, COUNT(*) FROM files GROUP BY state"
        rows = self._read_conn.execute(query) if self._read_conn is not None else self._stream(query)
        return {state: count for state, count in rows}
