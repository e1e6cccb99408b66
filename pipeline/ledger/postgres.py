"""The PostgreSQL ledger: one ledger shared by every host of a fleet (`--ledger postgresql://...`).

The same states and semantics as the SQLite ledger (pipeline.ledger.base), with PostgreSQL doing
what the SQLite ledger does by hand: a connection pool instead of the group-commit writer, one
short transaction per operation, and admission made idempotent by `INSERT ... ON CONFLICT`, so two
hosts admitting the same file at once get the same record. Every write is committed before it
returns, which more than keeps the promise of the written-behind ones.

A lost server (a restart, a failover) is ridden through for up to `max_outage` seconds: each
operation is one unit of work, safe to run twice, run again whole on a fresh connection
(pipeline.ledger.pg_reconnect); only past that is it a LedgerWriteError.

Reads are synchronous, as the interface wants (the producer calls them from a worker thread): they
use one autocommit connection of their own, or a short-lived one when the ledger is not open; one
file's history reads from a read-only snapshot on a connection of its own.
Claims and leases for `work` live in pipeline.ledger.leases, on the same pool.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, LiteralString, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pipeline.errors import ConfigError, LedgerWriteError
from pipeline.ledger import changes
from pipeline.ledger.pg_reconnect import LOST, ServerWatch, run_blocking, run_pooled
from pipeline.ledger.pg_schema import migrate
from pipeline.ledger.records import Admission, FileRecord, FileState, HistoryKind
from pipeline.ledger.schema import (
    FILE_COLUMNS,
    IDENTITY_COLUMNS,
    identity_columns,
    record_from_row,
    transcripts_json,
)
from pipeline.ledger.sql_ledger import SqlLedger
from pipeline.redact import redact, register_secret
from pipeline.sources.rows import FileSpec, Rejection

CONNECT_TIMEOUT_S = 10.0
KEY_CHUNK = 1000  # identities per lookup query

_COLUMNS: LiteralString = FILE_COLUMNS
_RETURNING: LiteralString = " RETURNING " + FILE_COLUMNS
# The same columns named through the table, for statements that join another relation.
_QUALIFIED_RETURNING: LiteralString = " RETURNING " + ", ".join(
    "files." + column.strip() for column in FILE_COLUMNS.split(",")
)

Row = tuple[Any, ...]
T = TypeVar("T")
Connection = psycopg.AsyncConnection[Row]
DEFAULT_MAX_OUTAGE = 300.0  # as --max-outage


def display_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}" if user else f"***@{netloc}"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0]) if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class EnqueueCounts:
    """What one batch of `enqueue` did: files added, already known, and refused (path, why)."""

    added: int
    known: int
    refused: list[tuple[str, str]]


class PostgresLedger(SqlLedger):
    """The ledger in the PostgreSQL database `url`. `host` names this machine in the fleet view;
    `max_outage` is how long a lost server is waited for before a write fails for good."""

    def __init__(
        self, url: str, *, host: str | None = None, pool_size: int = 8, max_outage: float = DEFAULT_MAX_OUTAGE
    ) -> None:
        self.url = url
        self.max_outage = max_outage
        self.location = display_url(url)
        self.host = host or socket.gethostname()
        password = urlsplit(url).password
        if password:
            register_secret(password)
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] | None = None
        self._reader: psycopg.Connection[Row] | None = None
        self._reader_lock = threading.Lock()
        self._broken: LedgerWriteError | None = None
        self._server = ServerWatch(self.location, max_outage)

    # --- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"autocommit": True, "connect_timeout": int(CONNECT_TIMEOUT_S)},
            open=False,
            name="slng-ledger",
        )
        try:
            # One direct connection first: a wrong URL or a server that is down fails at once, with
            # the server's own reason, instead of the pool retrying in the background.
            first = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S)
            )
            async with first:
                await migrate(first)
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
            self._reader = self._connect()
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            await pool.close()
            raise ConfigError(f"cannot open ledger {self.location}: {self._cause(exc)}") from None
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pool, self._pool = self._pool, None
        with self._reader_lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        if pool is not None:
            await pool.close()

    def _cause(self, exc: BaseException) -> str:
        if isinstance(exc, PoolTimeout):
            return f"no connection within {CONNECT_TIMEOUT_S:g} s (is the server up and the URL right?)"
        return _first_line(exc)

    def _connect(self) -> psycopg.Connection[Row]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S))

    async def flush(self) -> None:
        """Every write is committed before it returns: nothing is ever queued."""
        self._check_open()

    def _check_open(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Row]]:
        if self._broken is not None:
            raise self._broken
        assert self._pool is not None, "ledger is not open"
        return self._pool

    def _write_failed(self, exc: BaseException) -> LedgerWriteError:
        """The ledger can no longer record what the run does: this call and every later one fail."""
        self._broken = LedgerWriteError(
            f"ledger {self.location}: write failed, the server lost for {self.max_outage:g} s"
            f" (--max-outage): {self._cause(exc)}; what was committed is kept, a rerun resumes"
        )
        return self._broken

    def shared(self) -> PostgresLedger:
        return self

    async def run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """`work` on a pooled connection (autocommit: one statement is one transaction, or use
        `conn.transaction()`). Losing the server, `work` is run again, whole, on a fresh connection
        until it is back: `work` must be safe to run twice. Past `max_outage`, a LedgerWriteError
        for good."""
        pool = self._check_open()
        try:
            return await run_pooled(pool, work, self._server, CONNECT_TIMEOUT_S)
        except LOST as exc:
            raise self._write_failed(exc) from None

    async def _one(self, query: LiteralString, params: Sequence[Any]) -> Row | None:
        """Run one statement in its own transaction; its first row, if any."""

        async def one(conn: Connection) -> Row | None:
            cursor = await conn.execute(query, params)
            return await cursor.fetchone() if cursor.description else None

        return await self.run(one)

    async def _record(self, query: LiteralString, params: Sequence[Any]) -> FileRecord:
        """An UPDATE ... RETURNING of one file, as its new record."""
        row = await self._one(query + _RETURNING, params)
        if row is None:
            raise LedgerWriteError(f"ledger {self.location}: the file was removed from the ledger")
        return record_from_row(row)

    # --- runs and rows ---------------------------------------------------------------------------

    async def start_run(self, run_id: str) -> None:
        await self._one(
            "INSERT INTO runs(run_id, started_at) VALUES (%s, %s) ON CONFLICT (run_id) DO NOTHING",
            (run_id, time.time()),
        )

    async def finish_run(self, run_id: str, summary: Mapping[str, Any]) -> None:
        text = redact(json.dumps(summary, sort_keys=True))
        await self._one(
            "UPDATE runs SET finished_at = %s, summary_json = %s WHERE run_id = %s",
            (time.time(), text, run_id),
        )

    async def admit(self, spec: FileSpec, file_key: str, job_id: str, run_id: str) -> Admission:
        """One transaction: insert the file, or take the existing one (ON CONFLICT), atomically
        against any other host admitting the same file at the same moment."""
        now = time.time()
        tries = 0

        async def admit(conn: Connection) -> Admission:
            nonlocal tries
            tries += 1
            async with conn.transaction():
                return await self._admit(conn, spec, file_key, job_id, run_id, now, again=tries > 1)

        return await self.run(admit)

    async def _admit(
        self,
        conn: Connection,
        spec: FileSpec,
        file_key: str,
        job_id: str,
        run_id: str,
        now: float,
        *,
        again: bool,
    ) -> Admission:
        """The admission's statements. `again`: a second try after the server was lost, whose
        first may have been committed unheard (then the file is there, seen in this run, as ours)."""
        cursor = await conn.execute(
            "INSERT INTO files(" + IDENTITY_COLUMNS + ", state, job_id, seen_run, admitted_at,"
            " updated_at, host) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT DO NOTHING" + _RETURNING,
            (
                *identity_columns(spec, file_key),
                FileState.PENDING.value,
                job_id,
                run_id,
                now,
                now,
                self.host,
            ),
        )
        row = await cursor.fetchone()
        if row is not None:
            return Admission(record_from_row(row))
        cursor = await conn.execute(
            "UPDATE files SET seen_run = %s, source = %s, line = %s, updated_at = %s"
            " WHERE file_key = %s AND seen_run IS DISTINCT FROM %s" + _RETURNING,
            (run_id, spec.source, spec.line, now, file_key, run_id),
        )
        row = await cursor.fetchone()
        if row is not None:
            return Admission(record_from_row(row))
        cursor = await conn.execute(
            "SELECT source, line, " + _COLUMNS + " FROM files WHERE file_key = %s", (file_key,)
        )
        seen = await cursor.fetchone()
        if seen is not None and again and (seen[0], seen[1]) == (spec.source, spec.line):
            return Admission(record_from_row(seen[2:]))  # our own admission, committed unheard
        if seen is not None:
            where = f"{seen[0]}:{seen[1]}" if seen[1] else str(seen[0])
            return Admission(None, f"duplicate of an earlier row ({where})")
        cursor = await conn.execute("SELECT path FROM files WHERE job_id = %s", (job_id,))
        owner = await cursor.fetchone()
        other = owner[0] if owner is not None else "a file admitted at the same moment"
        return Admission(None, f"job_id {job_id} is already used by another file ({other})")

    async def enqueue(self, files: Sequence[tuple[FileSpec, str, str]], run_id: str) -> EnqueueCounts:
        """Admit many (spec, file_key, job_id) in one statement: `enqueue`'s batched load.

        A file already in the ledger is left as it is (whatever state a worker has it in); a new
        file whose job_id another file owns is refused, as by `admit`.
        """
        if not files:
            return EnqueueCounts(0, 0, [])
        now = time.time()
        columns: list[list[Any]] = [[] for _ in range(11)]
        for spec, key, job_id in files:
            for column, value in zip(columns, (*identity_columns(spec, key), job_id), strict=True):
                column.append(value)

        # Run again after a lost server, a batch committed unheard counts its files as known.
        async def load(conn: Connection) -> tuple[set[str], list[str], set[str]]:
            async with conn.transaction():
                cursor = await conn.execute(
                    "INSERT INTO files(" + IDENTITY_COLUMNS + ", job_id, state, seen_run, admitted_at,"
                    " updated_at) SELECT u.*, %s, %s, %s, %s FROM unnest(%s::text[], %s::text[], %s::int[],"
                    " %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[],"
                    " %s::text[]) AS u"
                    " ON CONFLICT DO NOTHING RETURNING file_key",
                    (FileState.PENDING.value, run_id, now, now, *columns),
                )
                added = {row[0] for row in await cursor.fetchall()}
                rest = [key for key in columns[0] if key not in added]
                known: set[str] = set()
                if rest:
                    cursor = await conn.execute(
                        "SELECT file_key FROM files WHERE file_key = ANY(%s)", (rest,)
                    )
                    known = {row[0] for row in await cursor.fetchall()}
            return added, rest, known

        added, rest, known = await self.run(load)
        refused = [
            (spec.path_text, f"job_id {job_id} is already used by another file")
            for spec, key, job_id in files
            if key not in added and key not in known
        ]
        return EnqueueCounts(len(added), len([k for k in rest if k in known]), refused)

    async def reject(self, run_id: str, rejection: Rejection) -> None:
        await self._one(
            "INSERT INTO rejections(run_id, source, line, path, reason, at) VALUES (%s,%s,%s,%s,%s,%s)",
            (run_id, *changes.stored_rejection(rejection), time.time()),
        )

    # --- one file's journey ----------------------------------------------------------------------

    async def _apply(self, change: changes.Change, *, durable: bool) -> FileRecord:
        """The change, stamped with this host, committed whether `durable` or not (see the module's
        note), and the record as the server has it after it."""
        query, params = change.update("%s", host=self.host)
        return await self._record(query, params)  # its column names are changes.py's literals

    # --- new jobs for known files ----------------------------------------------------------------

    async def _replace_job(self, change: changes.Change, kind: HistoryKind, reason: str) -> FileRecord:
        """Keep the current job in the history and move the file, in one transaction. Run again
        after a lost server, a move committed unheard is not kept twice (the file has moved on)."""
        record = change.record
        update, params = change.update("%s", host=self.host)

        async def replace(conn: Connection) -> Row | None:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO job_history(file_id, job_id, state, kind, error, replaced_at)"
                    " SELECT %s,%s,%s,%s,%s,%s WHERE EXISTS"
                    " (SELECT 1 FROM files WHERE id = %s AND job_id = %s AND generation = %s)",
                    (
                        record.id,
                        record.job_id,
                        record.state.value,
                        kind.value,
                        reason,
                        time.time(),
                        record.id,
                        record.job_id,
                        record.generation,
                    ),
                )
                return await (await conn.execute(update + _RETURNING, params)).fetchone()

        row = await self.run(replace)
        assert row is not None, "the file is in the ledger"
        return record_from_row(row)

    # --- the server's view -----------------------------------------------------------------------

    async def _set_job_statuses(
        self, updates: Sequence[tuple[FileRecord, str, str | None]], now: float
    ) -> list[FileRecord]:
        ids = [record.id for record, _status, _message in updates]
        statuses = [status for _record, status, _message in updates]
        errors = [message for _record, _status, message in updates]

        async def update(conn: Connection) -> list[Row]:
            cursor = await conn.execute(
                "UPDATE files SET job_status = u.status, job_error = u.error, status_checked_at = %s,"
                " updated_at = %s"
                " FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS u(id, status, error)"
                " WHERE files.id = u.id" + _QUALIFIED_RETURNING,
                (now, now, ids, statuses, errors),
            )
            return await cursor.fetchall()

        rows = await self.run(update)
        by_id = {record.id: record for record in map(record_from_row, rows)}
        return [by_id[i] for i in ids]

    async def set_server_deleted(self, record: FileRecord) -> FileRecord:
        now = time.time()
        return await self._record(
            "UPDATE files SET job_status = 'DELETED', server_deleted_at = %s, status_checked_at = %s,"
            " updated_at = %s WHERE id = %s",
            (now, now, now, record.id),
        )

    async def set_fetched(
        self, record: FileRecord, formats: str, transcripts: Sequence[str] = ()
    ) -> FileRecord:
        now = time.time()
        return await self._record(
            "UPDATE files SET fetched_formats = %s, transcripts = %s, fetched_at = %s, updated_at = %s"
            " WHERE id = %s",
            (formats, transcripts_json(transcripts), now, now, record.id),
        )

    # --- reads (the queries are SqlLedger's) ------------------------------------------------------

    _mark = "%s"

    def _any_of(self, column: LiteralString, values: Sequence[Any]) -> tuple[LiteralString, Sequence[Any]]:
        return column + " = ANY(%s)", (list(values),)

    def read(self, query: LiteralString | sql.Composed, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of one query: on the reader connection when open (made again after a lost
        server, for up to `max_outage`), else on a connection of its own (reports may run while
        nothing is open)."""

        def once() -> list[Row]:
            with self._reader_lock:
                if self._pool is not None:
                    if self._reader is None:
                        self._reader = self._connect()
                    return self._reader.execute(query, params).fetchall()
            with self._connect() as conn:
                return conn.execute(query, params).fetchall()

        try:
            if self._pool is None:
                return once()
            return run_blocking(once, self._server, self._drop_reader)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot read ledger {self.location}: {self._cause(exc)}") from None

    def _fetch(self, query: LiteralString, params: Sequence[Any] = ()) -> list[Row]:
        return self.read(query, params)

    def _drop_reader(self) -> None:
        with self._reader_lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _stream(self, query: LiteralString, params: Sequence[Any] = ()) -> Iterator[Row]:
        """Rows of one query, streamed from the server (a server-side cursor on its own connection)."""
        try:
            with self._connect() as conn, conn.transaction(), conn.cursor(name="slng_stream") as cursor:
                cursor.itersize = 2000
                yield from cursor.execute(query, params)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot read ledger {self.location}: {self._cause(exc)}") from None

    def _rows_for_keys(self, columns: LiteralString, file_keys: Sequence[str]) -> Iterator[Row]:
        for start in range(0, len(file_keys), KEY_CHUNK):
            chunk = list(file_keys[start : start + KEY_CHUNK])
            yield from self.read("SELECT " + columns + " FROM files WHERE file_key = ANY(%s)", (chunk,))

    def count_by_state(self) -> dict[str, int]:
        return {
            state: count for state, count in self.read("SELECT state, COUNT(*) FROM files GROUP BY state")
        }

    def _read_only(self, statements: Sequence[tuple[LiteralString, Sequence[Any]]]) -> list[list[Row]]:
        """Every row of each statement, from one read-only snapshot on a connection of its own."""
        try:
            with self._connect() as conn, conn.transaction():
                # One snapshot: a renewal between the two queries is seen whole or not at all.
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return [conn.execute(query, params).fetchall() for query, params in statements]
        except psycopg.Error as exc:
            raise ConfigError(f"cannot read ledger {self.location}: {self._cause(exc)}") from None
