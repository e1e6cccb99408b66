"""Group commit: one task owns the write connection and commits whatever is queued together.

Many workers then share one transaction and one fsync, so the ledger never becomes the
bottleneck. Each queued change runs in its own savepoint: one caller's failing change is
reported to that caller and does not undo the others in its batch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.observe.logs import log

T = TypeVar("T")
BATCH_LIMIT = 512

Change = Callable[[sqlite3.Connection], Any]


class _Slot:
    """Where the writer leaves one waiting caller's result."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None


_Job = tuple[Change, _Slot | None]  # no slot: written behind


class GroupCommitWriter:
    """`async with GroupCommitWriter(conn) as writer:` runs the writer task until the block ends,
    then commits what is still queued."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._send: MemoryObjectSendStream[_Job] | None = None
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        send, receive = anyio.create_memory_object_stream[_Job](max_buffer_size=1024)
        self._send = send
        task_group = await self._stack.enter_async_context(anyio.create_task_group())
        task_group.start_soon(self._run, receive)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._send is not None:
            await self._send.aclose()  # the writer drains what is queued, then ends
        await self._stack.aclose()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` inside the writer's next transaction; return its value once it is committed."""
        assert self._send is not None, "the writer is not running"
        slot = _Slot()
        await self._send.send((fn, slot))
        with anyio.CancelScope(shield=True):  # the change is queued: wait for it even if cancelled
            await slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.value  # type: ignore[no-any-return]

    async def write_behind(self, fn: Change) -> None:
        """Queue `fn` for the writer's next transaction without waiting for the commit."""
        assert self._send is not None, "the writer is not running"
        try:
            self._send.send_nowait((fn, None))
        except anyio.WouldBlock:
            await self._send.send((fn, None))

    async def _run(self, receive: MemoryObjectReceiveStream[_Job]) -> None:
        async with receive:
            while True:
                try:
                    batch = [await receive.receive()]
                except anyio.EndOfStream:
                    return
                while len(batch) < BATCH_LIMIT:
                    try:
                        batch.append(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                try:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(_commit_batch, self._conn, batch)
                except BaseException as exc:  # e.g. disk full: fail every waiter, never hang one
                    for _, slot in batch:
                        if slot is not None:
                            slot.error = slot.error or exc
                    raise
                finally:
                    for _, slot in batch:
                        if slot is not None:
                            slot.done.set()


def _commit_batch(conn: sqlite3.Connection, batch: list[_Job]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        _apply(conn, batch)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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
