"""Group commit: one task owns the write connection and commits whatever is queued together.

Many workers then share one transaction and one fsync, so the ledger never becomes the
bottleneck. Each queued change runs in its own savepoint: one caller's refused change (a
constraint) is reported to that caller and does not undo the others in its batch. A change that is
one SQL statement (`Statement`) needs no savepoint: SQLite undoes a refused statement by itself and
keeps the transaction, so the others' changes stay either way.

A caller waits for one of three points: none (`write_behind`), the change applied in the open
transaction (`write_applied`: its result is known, and every later change sees it), or the commit
(`write`). Each batch takes one trip to the writer's thread: apply, wake the applied callers from
there, and commit if anyone waits for that. While no caller waits for the commit, the changes that
come next (within a few milliseconds) are applied into the same transaction before it commits. If
it fails, the writer is broken like any failed batch, so the next durable write of those callers
raises instead of building on the lost change.

A failure of the storage itself (disk full, I/O error, read-only) breaks the writer for good: the
batch is rolled back, its callers and every later one get the same LedgerWriteError at once, and
the task keeps draining its queue, so no caller ever waits for a commit that cannot happen.

The write-ahead log is kept near the data's size: every commit appends whole pages to it, and
SQLite's own checkpoint (every 1000 pages) never shrinks the file, so even a small run carried a
WAL of megabytes. After a commit that leaves the WAL above a share of the database, the writer
checkpoints (PASSIVE: it never waits for a reader), and journal_size_limit (set on connect) lets
SQLite cut the file back when it next starts the log over.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.errors import LedgerWriteError
from pipeline.ledger.schema import rollback
from pipeline.logs import log

T = TypeVar("T")
BATCH_LIMIT = 512
CHAIN_LIMIT = 4 * BATCH_LIMIT  # changes in one transaction before it is committed anyway
LINGER = 0.02  # seconds an open transaction waits for one more change before it commits
OPEN_LIMIT = 0.25  # seconds an open transaction takes further changes at most
WAL_FLOOR = 256 * 1024  # bytes: below this the WAL is left alone (a checkpoint costs an fsync)
WAL_SHARE = 4  # checkpoint once the WAL outgrows 1/WAL_SHARE of the database

Change = Callable[[sqlite3.Connection], Any]


@dataclass(frozen=True, slots=True)
class Statement:
    """A change that is exactly one SQL statement: applied without a savepoint of its own."""

    sql: str
    params: Sequence[Any]

    def __call__(self, conn: sqlite3.Connection) -> None:
        conn.execute(self.sql, self.params)


# Primary SQLite result codes that mean the storage, not one change, is failing.
_STORAGE_FAILURES = frozenset(
    {
        5,  # SQLITE_BUSY: the database stayed locked past the timeout
        7,  # SQLITE_NOMEM
        8,  # SQLITE_READONLY
        10,  # SQLITE_IOERR
        11,  # SQLITE_CORRUPT
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
        26,  # SQLITE_NOTADB
    }
)


def is_storage_failure(exc: BaseException) -> bool:
    """Whether `exc` says the database file cannot be written at all (vs. one refused change)."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return isinstance(exc, sqlite3.OperationalError)
    return (code & 0xFF) in _STORAGE_FAILURES


class _Slot:
    """Where the writer leaves one waiting caller's result."""

    __slots__ = ("answered", "applied", "done", "error", "value")

    def __init__(self, *, applied: bool = False) -> None:
        self.done = anyio.Event()
        self.applied = applied  # woken once the change is applied, before the commit
        self.answered = False  # its result is final: value or error set, `done` set or being set
        self.value: Any = None
        self.error: BaseException | None = None

    def answer(self) -> None:
        self.answered = True
        self.done.set()


_Job = tuple[Change, _Slot | None]  # no slot: written behind


def _take(batch: list[_Job], receive: MemoryObjectReceiveStream[_Job]) -> list[_Job]:
    """`batch` topped up, without waiting, with what is queued (at most BATCH_LIMIT in all)."""
    while len(batch) < BATCH_LIMIT:
        try:
            batch.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return batch


async def _next(receive: MemoryObjectReceiveStream[_Job], linger: float) -> list[_Job]:
    """What is queued, or else what comes within `linger` seconds; [] if nothing (or the end)."""
    batch = _take([], receive)
    if batch:
        return batch
    with anyio.move_on_after(linger):
        try:
            return _take([await receive.receive()], receive)
        except anyio.EndOfStream:
            return []
    return []


class GroupCommitWriter:
    """`async with GroupCommitWriter(conn) as writer:` runs the writer task until the block ends,
    then commits what is still queued."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self._wal = path.with_name(path.name + "-wal")
        self._location = str(path)
        self._broken: LedgerWriteError | None = None
        self._send: MemoryObjectSendStream[_Job] | None = None
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        send, receive = anyio.create_memory_object_stream[_Job](max_buffer_size=1024)
        self._send = send
        # The writer's thread answers applied callers without a trip back: asyncio's own
        # thread-safe call (anyio's from_thread would block the thread until the loop ran it).
        self._loop = asyncio.get_running_loop()
        task_group = await self._stack.enter_async_context(anyio.create_task_group())
        task_group.start_soon(self._run, receive)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._send is not None:
            await self._send.aclose()  # the writer drains what is queued, then ends
        await self._stack.aclose()

    def cannot_write(self, exc: BaseException) -> LedgerWriteError:
        return LedgerWriteError(f"ledger {self._location}: cannot write: {exc}")

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` inside the writer's next transaction; return its value once it is committed."""
        return await self._wait(fn, _Slot())

    async def write_applied(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` inside the writer's next transaction; return its value once it is applied,
        before the commit. Later changes see it; a crash before the commit loses it (see above)."""
        return await self._wait(fn, _Slot(applied=True))

    async def _wait(self, fn: Callable[[sqlite3.Connection], T], slot: _Slot) -> T:
        # A cancelled caller stops here, before its change (a create intent) is queued.
        await anyio.lowlevel.checkpoint_if_cancelled()
        await self._queue((fn, slot))
        with anyio.CancelScope(shield=True):  # the change is queued: wait for it even if cancelled
            await slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.value  # type: ignore[no-any-return]

    async def write_behind(self, fn: Change) -> None:
        """Queue `fn` for the writer's next transaction without waiting for the commit."""
        await self._queue((fn, None))

    async def _queue(self, job: _Job) -> None:
        """Queue at once, where `send` would first yield a turn of the loop; wait only when the
        queue is full (back-pressure). A broken writer takes nothing more."""
        assert self._send is not None, "the writer is not running"
        if self._broken is not None:
            raise self._broken
        try:
            self._send.send_nowait(job)
        except anyio.WouldBlock:
            await self._send.send(job)

    async def _run(self, receive: MemoryObjectReceiveStream[_Job]) -> None:
        # Shielded as a whole: a cancel around the ledger (a signal during status or fetch) must
        # not end the writer while callers are queued, each waiting (shielded) for its answer.
        # It ends when the send side closes (`__aexit__`), once everything queued is written.
        with anyio.CancelScope(shield=True):
            async with receive:
                while True:
                    try:
                        first = await receive.receive()
                    except anyio.EndOfStream:
                        return
                    await self._write(_take([first], receive), receive)

    async def _write(self, batch: list[_Job], receive: MemoryObjectReceiveStream[_Job]) -> None:
        """Apply `batch` and commit it in the writer's thread, waking each caller at its point.

        While no caller of the open transaction waits for its commit, the changes that follow
        within LINGER are applied into it too (up to CHAIN_LIMIT changes, OPEN_LIMIT seconds): an
        admission then waits for the changes queued before it, not for their fsync, and it shares
        its commit with the next durable change instead of taking one of its own.

        One trip to the thread per batch: it applies the batch, answers the applied callers from
        the thread, and commits when the batch holds a durable change (or the chain is full),
        answering those callers from the thread too.
        Every trip waits for the loop and the GIL, and they are made one at a time, so on a busy
        loop their count, not SQLite, sets the ledger's pace.
        """
        jobs = list(batch)
        open_until = anyio.current_time() + OPEN_LIMIT
        try:
            started = False
            while self._broken is None:
                applied = any(slot is not None and slot.applied for _, slot in batch)
                durable = any(slot is not None and not slot.applied for _, slot in batch)
                idle = receive.statistics().current_buffer_used == 0
                full = durable or len(jobs) >= CHAIN_LIMIT or anyio.current_time() >= open_until
                commit = full or (not started and not applied and idle)  # else: chain what follows
                await anyio.to_thread.run_sync(self._step, batch, started, commit)
                started = True
                if commit:
                    break
                batch = await _next(receive, min(LINGER, open_until - anyio.current_time()))
                if not batch:
                    await anyio.to_thread.run_sync(self._commit_open)
                    break
                jobs.extend(batch)
        except BaseException as exc:  # disk full, I/O error: nothing more can be written
            self._broken = self.cannot_write(exc)
            log.debug("ledger writer stopped", exc_info=exc)
        finally:
            for _, slot in jobs:
                if slot is not None and not slot.answered:
                    if self._broken is not None:
                        slot.error = self._broken
                    slot.answer()

    def _step(self, batch: list[_Job], started: bool, commit: bool) -> None:
        """In the writer's thread: BEGIN unless `started`, apply the batch, answer its applied
        callers at once (the loop wakes them while this thread goes on), then, if `commit`,
        COMMIT, answer the callers waiting for it, and only then see to the WAL (a checkpoint is
        an fsync or two nobody needs to wait for). Rolled back if the apply or commit fails."""
        if not started:
            self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._apply(batch)
        except BaseException:
            rollback(self._conn)
            raise
        self._answer(batch, applied=True)
        if commit:
            self._commit()
            self._answer(batch, applied=False)
            self._keep_wal_small()

    def _answer(self, batch: list[_Job], *, applied: bool) -> None:
        """From the writer's thread: wake the batch's callers waiting for this point."""
        for _, slot in batch:
            if slot is not None and slot.applied is applied:
                slot.answered = True
                self._loop.call_soon_threadsafe(slot.done.set)

    def _commit_open(self) -> None:
        self._commit()
        self._keep_wal_small()

    def _commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            rollback(self._conn)
            raise

    def _keep_wal_small(self) -> None:
        """Checkpoint when the WAL has outgrown its share of the data (see the module docstring)."""
        try:
            wal_size = os.stat(self._wal).st_size
            if wal_size <= WAL_FLOOR or wal_size <= os.stat(self._path).st_size // WAL_SHARE:
                return
        except OSError:
            return
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # e.g. the database cannot grow: the commit itself is safe
            log.debug("ledger checkpoint failed: %s", exc)

    def _apply(self, batch: list[_Job]) -> None:
        conn = self._conn
        for fn, slot in batch:
            single = isinstance(fn, Statement)
            if not single:
                conn.execute("SAVEPOINT job")
            try:
                value = fn(conn)
                if not single:
                    conn.execute("RELEASE job")
            except Exception as exc:
                if is_storage_failure(exc):
                    raise  # the whole batch is lost, and the writer with it
                # One caller's refused change must not undo the others' changes.
                if not single:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                refused: Exception = self.cannot_write(exc) if isinstance(exc, sqlite3.Error) else exc
                if slot is None:
                    log.error("%s", refused)
                else:
                    slot.error = refused
                continue
            if slot is not None:
                slot.value = value
