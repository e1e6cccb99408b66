"""The results ledger: what happened to every file, durable across crashes.

SQLite in WAL mode. All writes go through one writer task that commits whatever is queued in one
transaction (group commit), so many workers share one fsync and the ledger never becomes the
bottleneck. Admission and the create intent wait until they are on disk, since the next remote
step depends on them; other states are written behind, in order (a lost one repeats an idempotent
step), and any later awaited write makes them durable too.
Reads for the skip decision use a separate connection from the producer thread (WAL lets readers
run beside the writer).

Presigned URLs are never stored (they are credentials): a file left in `presigned` state is simply
presigned again on the next run, with the same job_id and key.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import anyio
import anyio.abc
import filelock
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.errors import ConfigError, LockHeldError
from pipeline.observe.logs import log
from pipeline.observe.redact import redact
from pipeline.sources.rows import FileSpec, Rejection, escape_control

T = TypeVar("T")


class FileState(enum.StrEnum):
    PENDING = "pending"  # admitted, job_id chosen, nothing remote done yet
    PRESIGNED = "presigned"  # an upload URL was issued (not stored: it is a credential)
    UPLOADED = "uploaded"  # the object is in the bucket, MD5 verified
    CREATING = "creating"  # create sent; outcome unknown until confirmed
    CREATED = "created"  # the job exists on the server
    FAILED = "failed"  # a permanent error; see error / error_class


RESUMABLE_STATES = (FileState.PENDING, FileState.PRESIGNED, FileState.UPLOADED, FileState.CREATING)

_MIGRATIONS: tuple[str, ...] = (
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
)

_FILE_COLUMNS = (
    "id, file_key, source, line, path, relative_path, size, mtime_ns, settings_hash, settings_json, "
    "state, job_id, generation, s3_key, echo_json, md5, attempts, error, error_class, seen_run, "
    "job_status, job_error, fetched_formats, created_at"
)


@dataclass(slots=True)
class FileRecord:
    """One ledger row, as the runner sees it."""

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
    error_class: str | None
    seen_run: str | None
    job_status: str | None = None  # the server's status, as last seen (QUEUED ... DONE, FAILED)
    job_error: str | None = None  # the server's error_message for a FAILED job
    fetched_formats: str | None = None  # comma list of transcript formats on disk
    created_at: float | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> FileRecord:
        values = list(row)
        values[10] = FileState(values[10])
        return cls(*values)

    @property
    def echo(self) -> dict[str, Any]:
        return dict(json.loads(self.echo_json)) if self.echo_json else {}


class Glance(NamedTuple):
    """A file's state as the skip decision needs it."""

    state: FileState
    error_class: str | None
    job_id: str


@dataclass(frozen=True, slots=True)
class Admission:
    """The ledger's answer for an incoming row: the record to work on, or why the row is refused."""

    record: FileRecord | None
    refusal: str | None = None


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(_MIGRATIONS):
        raise ConfigError(
            f"ledger schema version {version} is newer than this slng-bulk understands "
            f"({len(_MIGRATIONS)}); upgrade slng-bulk"
        )
    for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def acquire_run_lock(ledger_path: Path) -> filelock.BaseFileLock:
    """One run per ledger. The lock is an OS file lock, so a dead holder releases it by dying."""
    lock = filelock.FileLock(f"{ledger_path}.lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockHeldError(
            f"another slng-bulk run is using the ledger {ledger_path} (lock file {ledger_path}.lock); "
            "wait for it to finish"
        ) from None
    return lock


_Job = tuple[Callable[[sqlite3.Connection], Any], "_Slot | None"]  # no slot: written behind


def _execute(sql: str, params: Sequence[Any], conn: sqlite3.Connection) -> None:
    conn.execute(sql, params)


def _archive_job(conn: sqlite3.Connection, current: tuple[int, str, str], reason: str, now: float) -> None:
    """Keep a file's current job (file id, job_id, state) in its history before it moves to another."""
    conn.execute(
        "INSERT INTO job_history(file_id, job_id, state, error, replaced_at) VALUES (?,?,?,?,?)",
        (*current, reason, now),
    )


class _Slot:
    """Where the writer leaves one caller's result."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class Ledger:
    """The SQLite ledger. Open with `async with Ledger.open(path) as ledger:`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._send: MemoryObjectSendStream[_Job] | None = None
        self._stack = AsyncExitStack()

    # --- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Ledger:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            if fresh:
                # Owner-only from the first byte: the ledger names files and jobs of other people.
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._write_conn = _connect(self.path)
            self._read_conn = _connect(self.path)
            _migrate(self._write_conn)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open ledger {self.path}: {exc}") from None
        send, receive = anyio.create_memory_object_stream[_Job](max_buffer_size=1024)
        self._send = send
        task_group = await self._stack.enter_async_context(anyio.create_task_group())
        task_group.start_soon(self._writer, receive)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._send is not None:
            await self._send.aclose()  # the writer drains what is queued, then ends
        await self._stack.aclose()
        for conn in (self._write_conn, self._read_conn):
            if conn is not None:
                conn.close()

    @classmethod
    def open(cls, path: Path | str) -> Ledger:
        return cls(Path(path))

    async def _writer(self, receive: MemoryObjectReceiveStream[_Job]) -> None:
        conn = self._write_conn
        assert conn is not None
        async with receive:
            while True:
                try:
                    batch = [await receive.receive()]
                except anyio.EndOfStream:
                    return
                while len(batch) < 512:
                    try:
                        batch.append(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                try:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(self._commit_batch, conn, batch)
                except BaseException as exc:  # e.g. disk full: fail every waiter, never hang one
                    for _, slot in batch:
                        if slot is not None:
                            slot.error = slot.error or exc
                    raise
                finally:
                    for _, slot in batch:
                        if slot is not None:
                            slot.done.set()

    @staticmethod
    def _commit_batch(conn: sqlite3.Connection, batch: list[_Job]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            Ledger._apply(conn, batch)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _apply(conn: sqlite3.Connection, batch: list[_Job]) -> None:
        for fn, slot in batch:
            conn.execute("SAVEPOINT job")
            try:
                value = fn(conn)
                conn.execute("RELEASE job")
            except Exception as exc:  # one caller's failure must not undo the others' changes
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                if slot is None:
                    log.error("ledger write failed: %s", exc)
                else:
                    slot.error = exc
                continue
            if slot is not None:
                slot.value = value

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` inside the writer's next transaction; return once it is committed."""
        assert self._send is not None, "ledger is not open"
        slot = _Slot()
        await self._send.send((fn, slot))
        with anyio.CancelScope(shield=True):  # the change is queued: wait for it even if cancelled
            await slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.value  # type: ignore[no-any-return]

    async def flush(self) -> None:
        """Return once everything queued so far, written behind or not, is committed."""
        await self._write(lambda conn: None)

    async def _write_behind(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Queue `fn` for the writer's next transaction without waiting for the commit.

        For records whose loss in a crash only means redoing an idempotent step. Writes are applied
        in order, so any later awaited write (or closing the ledger) also makes this one durable.
        """
        assert self._send is not None, "ledger is not open"
        try:
            self._send.send_nowait((fn, None))
        except anyio.WouldBlock:
            await self._send.send((fn, None))

    # --- reads (sync: called from the producer thread or at report time) --------------------------

    def _rows_for_keys(self, columns: str, file_keys: Sequence[str]) -> Iterator[Sequence[Any]]:
        """`columns` of the files with these identities, one IN query per 500 keys."""
        conn = self._read_conn
        assert conn is not None
        for start in range(0, len(file_keys), 500):
            chunk = file_keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            yield from conn.execute(f"SELECT {columns} FROM files WHERE file_key IN ({marks})", chunk)

    def lookup(self, file_keys: Sequence[str]) -> dict[str, FileRecord]:
        """Whole records for the given identities."""
        records = (FileRecord.from_row(row) for row in self._rows_for_keys(_FILE_COLUMNS, file_keys))
        return {record.file_key: record for record in records}

    def glance(self, file_keys: Sequence[str]) -> dict[str, Glance]:
        """Just enough of each known file to decide a skip: the producer's hot path on reruns."""
        rows = self._rows_for_keys("file_key, state, error_class, job_id", file_keys)
        return {key: Glance(FileState(state), error, job_id) for key, state, error, job_id in rows}

    def records(self, states: Iterable[str] | None = None) -> Iterator[FileRecord]:
        """Every file record (optionally only some states), streamed."""
        conn = _connect(self.path)
        try:
            query = f"SELECT {_FILE_COLUMNS} FROM files"
            params: list[str] = []
            wanted = list(states or ())
            if wanted:
                query += f" WHERE state IN ({','.join('?' * len(wanted))})"
                params = wanted
            for row in conn.execute(query + " ORDER BY id", params):
                yield FileRecord.from_row(row)
        finally:
            conn.close()

    def rejections(self, run_id: str | None = None) -> Iterator[tuple[str, int | None, str | None, str]]:
        conn = _connect(self.path)
        try:
            query = "SELECT source, line, path, reason FROM rejections"
            params: tuple[str, ...] = ()
            if run_id is not None:
                query += " WHERE run_id = ?"
                params = (run_id,)
            yield from conn.execute(query + " ORDER BY id", params)
        finally:
            conn.close()

    def count_by_state(self) -> dict[str, int]:
        conn = self._read_conn or _connect(self.path)
        try:
            return dict(conn.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall())
        finally:
            if conn is not self._read_conn:
                conn.close()

    # --- writes ----------------------------------------------------------------------------------

    async def start_run(self, run_id: str) -> None:
        now = time.time()
        await self._write(
            lambda c: c.execute("INSERT INTO runs(run_id, started_at) VALUES (?, ?)", (run_id, now))
        )

    async def finish_run(self, run_id: str, summary: dict[str, Any]) -> None:
        text = redact(json.dumps(summary, sort_keys=True))
        now = time.time()
        await self._write(
            lambda c: c.execute(
                "UPDATE runs SET finished_at = ?, summary_json = ? WHERE run_id = ?", (now, text, run_id)
            )
        )

    async def admit(self, spec: FileSpec, file_key: str, job_id: str, run_id: str) -> Admission:
        """Record a file before any remote call, or say why it cannot be taken.

        A second row with the same identity in the same run is a duplicate; a job_id already
        owned by another file is refused (it would create a job for the wrong audio).
        """

        def admit(conn: sqlite3.Connection) -> Admission:
            now = time.time()
            row = conn.execute(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE file_key = ?", (file_key,)
            ).fetchone()
            if row is not None:
                record = FileRecord.from_row(row)
                if record.seen_run == run_id:
                    where = f"{record.source}:{record.line}" if record.line else record.source
                    return Admission(None, f"duplicate of an earlier row ({where})")
                conn.execute(
                    "UPDATE files SET seen_run = ?, source = ?, line = ?, updated_at = ? WHERE id = ?",
                    (run_id, spec.source, spec.line, now, record.id),
                )
                record.seen_run, record.source, record.line = run_id, spec.source, spec.line
                return Admission(record)
            owner = conn.execute("SELECT path FROM files WHERE job_id = ?", (job_id,)).fetchone()
            if owner is not None:
                return Admission(None, f"job_id {job_id} is already used by another file ({owner[0]})")
            cursor = conn.execute(
                "INSERT INTO files(file_key, source, line, path, relative_path, size, mtime_ns,"
                " settings_hash,"
                " settings_json, state, job_id, seen_run, admitted_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    file_key,
                    spec.source,
                    spec.line,
                    str(spec.path),
                    spec.relative_path,
                    spec.size,
                    spec.mtime_ns,
                    spec.settings.settings_hash(),
                    spec.settings.model_dump_json(exclude_none=True),
                    FileState.PENDING.value,
                    job_id,
                    run_id,
                    now,
                    now,
                ),
            )
            new = conn.execute(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
            return Admission(FileRecord.from_row(new))

        return await self._write(admit)

    async def transition(
        self, record: FileRecord, state: FileState, *, durable: bool = True, **fields: Any
    ) -> None:
        """Move a file to `state` (and set other columns) and mirror it on `record`.

        `durable=True` returns once the change is committed: for a state the next remote step
        depends on (the create intent). Otherwise the change is written behind.
        """
        stamp_column = {
            FileState.PRESIGNED: "presigned_at",
            FileState.UPLOADED: "uploaded_at",
            FileState.CREATING: "create_sent_at",
            FileState.CREATED: "created_at",
        }.get(state)
        now = time.time()
        values: dict[str, Any] = {"state": state.value, "updated_at": now, **fields}
        if stamp_column:
            values[stamp_column] = now
        if "error" in values and values["error"] is not None:
            values["error"] = escape_control(redact(str(values["error"])))[:2000]
        assignments = ", ".join(f"{column} = ?" for column in values)
        params = (*values.values(), record.id)
        record.state = state
        for column, value in fields.items():
            if hasattr(record, column):
                setattr(record, column, value)
        update = functools.partial(_execute, f"UPDATE files SET {assignments} WHERE id = ?", params)
        if durable:
            await self._write(update)
        else:
            await self._write_behind(update)

    async def set_job_status(self, record: FileRecord, status: str, error: str | None) -> None:
        """The server's view of the job (from status polling, list paging or reconcile)."""
        now = time.time()
        message = redact(error)[:2000] if error else None
        await self._write(
            lambda c: c.execute(
                "UPDATE files SET job_status = ?, job_error = ?, status_checked_at = ?, updated_at = ?"
                " WHERE id = ?",
                (status, message, now, now, record.id),
            )
        )
        record.job_status, record.job_error = status, message

    async def set_fetched(self, record: FileRecord, formats: str) -> None:
        now = time.time()
        await self._write(
            lambda c: c.execute(
                "UPDATE files SET fetched_formats = ?, fetched_at = ?, updated_at = ? WHERE id = ?",
                (formats, now, now, record.id),
            )
        )
        record.fetched_formats = formats

    async def count_attempt(self, record: FileRecord) -> None:
        record.attempts += 1
        await self._write_behind(
            functools.partial(
                _execute, "UPDATE files SET attempts = ? WHERE id = ?", (record.attempts, record.id)
            )
        )

    async def renew(self, record: FileRecord, new_job_id: str, reason: str) -> None:
        """Start a file over as a new job (--force, retry-failed), keeping the old job in history."""
        now = time.time()
        generation = record.generation + 1
        current = (record.id, record.job_id, record.state.value)  # taken now, before the record moves

        def renew(conn: sqlite3.Connection) -> None:
            _archive_job(conn, current, reason, now)
            conn.execute(
                "UPDATE files SET job_id = ?, generation = ?, state = ?, s3_key = NULL, echo_json = NULL,"
                " md5 = NULL, error = NULL, error_class = NULL, presigned_at = NULL, uploaded_at = NULL,"
                " create_sent_at = NULL, created_at = NULL, job_status = NULL, job_error = NULL,"
                " status_checked_at = NULL, fetched_formats = NULL, fetched_at = NULL,"
                " server_deleted_at = NULL, updated_at = ? WHERE id = ?",
                (new_job_id, generation, FileState.PENDING.value, now, record.id),
            )

        await self._write(renew)
        record.job_id, record.generation, record.state = new_job_id, generation, FileState.PENDING
        record.s3_key = record.echo_json = record.md5 = record.error = record.error_class = None
        record.job_status = record.job_error = record.fetched_formats = None  # the new job has neither

    async def reject(self, run_id: str, rejection: Rejection) -> None:
        # Text from other people's manifests: escaped, so it stores as UTF-8 and prints on one line.
        reason = escape_control(redact(rejection.reason))
        source = escape_control(rejection.source)
        path = escape_control(rejection.path) if rejection.path is not None else None
        now = time.time()
        await self._write_behind(
            functools.partial(
                _execute,
                "INSERT INTO rejections(run_id, source, line, path, reason, at) VALUES (?,?,?,?,?,?)",
                (run_id, source, rejection.line, path, reason, now),
            )
        )

    # --- follow-through (status, fetch, retry-failed, reconcile) ----------------------------------

    async def set_job_statuses(self, updates: Sequence[tuple[FileRecord, str, str | None]]) -> None:
        """Many jobs' server status in one transaction (a page of the job list is one commit)."""
        if not updates:
            return
        now = time.time()
        rows = [
            (status, redact(error)[:2000] if error else None, now, now, record.id)
            for record, status, error in updates
        ]
        await self._write(
            lambda c: c.executemany(
                "UPDATE files SET job_status = ?, job_error = ?, status_checked_at = ?, updated_at = ?"
                " WHERE id = ?",
                rows,
            )
        )
        for (record, status, _error), row in zip(updates, rows, strict=True):
            record.job_status, record.job_error = status, row[1]

    async def set_server_deleted(self, record: FileRecord) -> None:
        """The job was deleted on the server (--delete-after-fetch); its outputs are on disk."""
        now = time.time()
        await self._write(
            lambda c: c.execute(
                "UPDATE files SET job_status = 'DELETED', server_deleted_at = ?, status_checked_at = ?,"
                " updated_at = ? WHERE id = ?",
                (now, now, now, record.id),
            )
        )
        record.job_status = "DELETED"

    def history_job_ids(self) -> set[str]:
        """Every job_id a file once had and gave up (--force, retry-failed)."""
        conn = _connect(self.path)
        try:
            return {row[0] for row in conn.execute("SELECT job_id FROM job_history")}
        finally:
            conn.close()

    def renewed_not_created(self, reason_prefix: str) -> list[FileRecord]:
        """Files renewed with a history reason starting with `reason_prefix` whose new job does not
        exist yet (e.g. retry-failed was interrupted between the renew and the create)."""
        states = [s.value for s in RESUMABLE_STATES]
        pattern = reason_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conn = _connect(self.path)
        try:
            query = (
                f"SELECT {_FILE_COLUMNS} FROM files WHERE generation > 0"
                f" AND state IN ({','.join('?' * len(states))})"
                " AND (SELECT h.error FROM job_history h WHERE h.file_id = files.id"
                " ORDER BY h.id DESC LIMIT 1) LIKE ? ESCAPE '\\' ORDER BY id"
            )
            return [FileRecord.from_row(row) for row in conn.execute(query, (*states, pattern))]
        finally:
            conn.close()

    async def adopt_job(self, record: FileRecord, job_id: str, generation: int, reason: str) -> None:
        """Point a file at a later job found on the server (reconcile), the current one into history."""
        now = time.time()
        current = (record.id, record.job_id, record.state.value)  # taken now, before the record moves

        def adopt(conn: sqlite3.Connection) -> None:
            _archive_job(conn, current, reason, now)
            conn.execute(
                "UPDATE files SET job_id = ?, generation = ?, state = ?, error = NULL, error_class = NULL,"
                " job_status = NULL, job_error = NULL, fetched_formats = NULL, fetched_at = NULL,"
                " created_at = ?, updated_at = ? WHERE id = ?",
                (job_id, generation, FileState.CREATED.value, now, now, record.id),
            )

        await self._write(adopt)
        record.job_id, record.generation, record.state = job_id, generation, FileState.CREATED
        record.error = record.error_class = record.job_status = record.job_error = None
        record.fetched_formats = None
