"""The ledger interface: every operation the pipeline asks of a results ledger, and what it means.

A backend (SQLite, PostgreSQL) implements all of it with the same states and semantics; the
contract tests in tests/ledger run against each. Durability is part of the contract:

- *durable* operations return once the change is committed: the create intent, renew, adopt, job
  statuses, fetch progress, runs. The next remote step depends on them.
- *applied* operations (admission) return once the change is made where every later write sees
  it; a backend may commit it a moment later, with its batch. Lost in a crash, an admission only
  means the next run admits the file again with the same deterministic job_id; if its commit
  fails, every later write raises, so no create is sent on top of it. `flush` makes it durable.
- *written behind* operations queue the change and return at once; they are applied in order, so
  any later durable operation (or `flush`, or closing the ledger) makes them durable too. A lost
  one only repeats an idempotent step (presign again, ask the server again).

Operations that change a file return the new record and leave the caller's record untouched.
A write the ledger cannot make (disk full, I/O error) raises LedgerWriteError, for that call and
every later one: the run must stop, since it could no longer record what it does.
Reads are synchronous, for worker threads and tools without an event loop (`report`, the tests);
code on the event loop reads through `ledger.reads` (`AsyncReads`), which runs each read on a
worker thread, so no SQLite query or PostgreSQL round trip ever blocks the loop (a test holds it).
"""

from __future__ import annotations

import abc
import functools
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, LiteralString, Protocol, Self, TypeVar

import anyio

from pipeline.errors import ErrorClass
from pipeline.ledger import changes
from pipeline.ledger.records import (
    CHANGED,
    Admission,
    FileRecord,
    FileStory,
    Glance,
    HistoryKind,
    Rejected,
    RejectionRecord,
)
from pipeline.sources.rows import FileSpec, Rejection

if TYPE_CHECKING:
    from psycopg import AsyncConnection, sql

    from pipeline.ledger.postgres import EnqueueCounts

T = TypeVar("T")

READ_BATCH = 1000  # records streamed per hop to the worker thread


class Ledger(abc.ABC):
    """A results ledger. Use as `async with open_ledger(target) as ledger:`; reads work unopened."""

    location: str
    """Where the ledger lives, for messages (a path, or a URL without its password)."""

    @functools.cached_property
    def reads(self) -> AsyncReads:
        """The reads, for code on the event loop."""
        return AsyncReads(self)

    def shared(self) -> SharedLedger | None:
        """This ledger as one that many hosts use at once (enqueue, work, the fleet view), or None
        for a ledger of one run's own."""
        return None

    # --- lifecycle -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def __aenter__(self) -> Self:
        """Open (creating and migrating the schema if needed). Bad target: ConfigError."""

    @abc.abstractmethod
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Write what is queued, then close."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Return once everything queued so far, written behind or not, is committed."""

    # --- runs and rows ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def start_run(self, run_id: str) -> None:
        """Durable: a run began."""

    @abc.abstractmethod
    async def finish_run(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Durable: a run ended, with its summary (redacted before it is stored)."""

    @abc.abstractmethod
    async def admit(self, spec: FileSpec, file_key: str, job_id: str, run_id: str) -> Admission:
        """Applied: record a file before any remote call, or say why it cannot be taken.

        A known identity gets its existing record back (its job_id and state win over `job_id`),
        marked as seen by `run_id`. A second row with the same identity in the same run is a
        duplicate; a new file whose job_id another file owns is refused (it would create a job for
        the wrong audio).
        """

    @abc.abstractmethod
    async def reject(self, run_id: str, rejection: Rejection) -> None:
        """Written behind: a row refused as bad input (text escaped to one printable line)."""

    # --- one file's journey (typed transitions) --------------------------------------------------
    # Each step's change is derived once, here (pipeline.ledger.changes); a backend only applies it.

    async def count_attempt(self, record: FileRecord) -> FileRecord:
        """Written behind: one more attempt at the file (a presign, or a retried request)."""
        return await self._apply(changes.attempt_counted(record), durable=False)

    async def mark_pending(self, record: FileRecord) -> FileRecord:
        """Written behind: a failed file starts over with the same job_id; its error is cleared."""
        return await self._apply(changes.restarted(record, time.time()), durable=False)

    async def mark_presigned(
        self, record: FileRecord, s3_key: str, echo: Mapping[str, Any], *, attempts: int | None = None
    ) -> FileRecord:
        """Written behind: an upload URL was issued for `s3_key` (the URL itself is never stored);
        `echo` is what the presign answer echoed back, to send again with the create. `attempts`,
        if given, is stored with it: the presign's own attempt counted in the same write."""
        change = changes.presigned(record, s3_key, echo, attempts, time.time())
        return await self._apply(change, durable=False)

    async def mark_uploaded(self, record: FileRecord, md5: str) -> FileRecord:
        """Written behind: the object is in the bucket with this MD5 (the create intent that
        follows is durable and carries this change to disk first)."""
        return await self._apply(changes.uploaded(record, md5, time.time()), durable=False)

    async def mark_creating(self, record: FileRecord, attempts: int) -> FileRecord:
        """Durable, before the create is sent: after a crash the outcome is asked, never resent."""
        return await self._apply(changes.creating(record, attempts, time.time()), durable=True)

    async def mark_created(self, record: FileRecord) -> FileRecord:
        """Written behind: the job exists on the server (a lost record is confirmed again by GET)."""
        return await self._apply(changes.created(record, time.time()), durable=False)

    async def mark_failed(self, record: FileRecord, error: str, error_class: ErrorClass) -> FileRecord:
        """Written behind: the file failed for this run. PERMANENT failures are not sent again by
        later runs but reported again (--force takes them); others are tried again, same job_id."""
        change = changes.failed(record, error, error_class.value, time.time())
        return await self._apply(change, durable=False)

    async def mark_changed(self, record: FileRecord, error: str) -> FileRecord:
        """Written behind: the file changed while uploading (error_class CHANGED): tried next run."""
        return await self._apply(changes.failed(record, error, CHANGED, time.time()), durable=False)

    @abc.abstractmethod
    async def _apply(self, change: changes.Change, *, durable: bool) -> FileRecord:
        """Make one file's change: committed before returning if `durable`, else at least written
        behind (see the module's note); the record as the change leaves it."""

    # --- new jobs for known files ----------------------------------------------------------------

    async def renew(self, record: FileRecord, new_job_id: str, kind: HistoryKind, reason: str) -> FileRecord:
        """Durable: start a file over as a new job (state pending, generation + 1, remote fields
        cleared), its current job kept in the history with `kind` and the human `reason`."""
        return await self._replace_job(changes.renewed(record, new_job_id, time.time()), kind, reason)

    async def adopt_job(self, record: FileRecord, job_id: str, generation: int, reason: str) -> FileRecord:
        """Durable: point a file at a later job of its own found on the server (reconcile, kind
        RECONCILED), state created; the current job goes into the history."""
        change = changes.adopted(record, job_id, generation, time.time())
        return await self._replace_job(change, HistoryKind.RECONCILED, reason)

    @abc.abstractmethod
    async def _replace_job(self, change: changes.Change, kind: HistoryKind, reason: str) -> FileRecord:
        """Durable, one transaction: keep the file's current job in its history (with `kind` and
        `reason`) and apply `change`, which moves it to another job; the record it leaves."""

    # --- the server's view (status, fetch) -------------------------------------------------------

    async def set_job_statuses(
        self, updates: Sequence[tuple[FileRecord, str, str | None]]
    ) -> list[FileRecord]:
        """Durable, one commit: many jobs' status and server message (a page of the job list); an
        empty page writes nothing."""
        if not updates:
            return []
        cleaned = [(record, status, changes.server_message(error)) for record, status, error in updates]
        return await self._set_job_statuses(cleaned, time.time())

    @abc.abstractmethod
    async def _set_job_statuses(
        self, updates: Sequence[tuple[FileRecord, str, str | None]], now: float
    ) -> list[FileRecord]:
        """Store each (record, status, server message as stored) in one commit, checked at `now`."""

    @abc.abstractmethod
    async def set_server_deleted(self, record: FileRecord) -> FileRecord:
        """Durable: the job was deleted on the server (its outputs are on disk); status DELETED."""

    @abc.abstractmethod
    async def set_fetched(
        self, record: FileRecord, formats: str, transcripts: Sequence[str] = ()
    ) -> FileRecord:
        """Durable: these transcript formats (comma list) are on disk, in these files (as written,
        so a report names them whatever --out was)."""

    # --- reads -----------------------------------------------------------------------------------

    @abc.abstractmethod
    def glance(self, file_keys: Sequence[str]) -> dict[str, Glance]:
        """Just enough of each known file to decide a skip: the producer's hot path on reruns."""

    @abc.abstractmethod
    def records(self, states: Iterable[str] | None = None) -> Iterator[FileRecord]:
        """Every file record (optionally only in `states`), in admission order, streamed."""

    @abc.abstractmethod
    def rejections(self, run_id: str | None = None) -> Iterator[Rejected]:
        """Rows refused as bad input (optionally by one run), in order."""

    @abc.abstractmethod
    def count_by_state(self) -> dict[str, int]:
        """How many files are in each state (states with none are absent)."""

    @abc.abstractmethod
    def history_job_ids(self) -> set[str]:
        """Every job_id a file once had and gave up (--force, retry-failed, reconcile)."""

    @abc.abstractmethod
    def renewed_not_created(self, kind: HistoryKind) -> list[FileRecord]:
        """Files whose latest renewal was of `kind` and whose new job does not exist yet (e.g.
        retry-failed interrupted between the renew and the create), in admission order."""

    # --- one file's whole story (report --path/--job-id) -----------------------------------------
    # Read-only and from one snapshot, on a connection of their own: they take no lock and write
    # nothing (not even a migration), so they work while a run holds the ledger.

    @abc.abstractmethod
    def stories_at(self, paths: Sequence[str]) -> list[FileStory]:
        """Every record stored under one of `paths` (spellings of one path: the same file with other
        settings, or changed since, is another record), in admission order."""

    @abc.abstractmethod
    def stories_of_job(self, job_id: str) -> list[FileStory]:
        """The record of the file that has `job_id`, or had it before a renewal."""

    @abc.abstractmethod
    def rejections_at(self, paths: Sequence[str]) -> list[RejectionRecord]:
        """Rows refused under one of `paths`, in order, with the run that refused them and when."""


class AsyncReads:
    """A ledger's reads as awaitables: each runs on a worker thread, and a long one (every record)
    is streamed a batch per hop, so memory stays flat and the event loop never waits on a query."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @staticmethod
    async def _off_loop(read: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(read)

    async def glance(self, file_keys: Sequence[str]) -> dict[str, Glance]:
        return await self._off_loop(lambda: self._ledger.glance(file_keys))

    async def records(self, states: Iterable[str] | None = None) -> AsyncIterator[FileRecord]:
        stream = await self._off_loop(lambda: self._ledger.records(states))
        try:
            while batch := await self._off_loop(lambda: list(itertools.islice(stream, READ_BATCH))):
                for record in batch:
                    yield record
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                await self._off_loop(close)  # a generator's cursor is let go on the same side

    async def rejections(self, run_id: str | None = None) -> list[Rejected]:
        return await self._off_loop(lambda: list(self._ledger.rejections(run_id)))

    async def count_by_state(self) -> dict[str, int]:
        return await self._off_loop(self._ledger.count_by_state)

    async def history_job_ids(self) -> set[str]:
        return await self._off_loop(self._ledger.history_job_ids)

    async def renewed_not_created(self, kind: HistoryKind) -> list[FileRecord]:
        return await self._off_loop(lambda: self._ledger.renewed_not_created(kind))

    async def stories_at(self, paths: Sequence[str]) -> list[FileStory]:
        return await self._off_loop(lambda: self._ledger.stories_at(paths))

    async def stories_of_job(self, job_id: str) -> list[FileStory]:
        return await self._off_loop(lambda: self._ledger.stories_of_job(job_id))

    async def rejections_at(self, paths: Sequence[str]) -> list[RejectionRecord]:
        return await self._off_loop(lambda: self._ledger.rejections_at(paths))


class SharedLedger(Protocol):
    """What a ledger shared by many hosts offers beyond `Ledger`: rows loaded in bulk for the
    fleet, and statements on the shared server (claims, leases, the fleet's request rate), each run
    again whole on a fresh connection when the server was lost (`run`)."""

    host: str
    location: str

    async def enqueue(self, files: Sequence[tuple[FileSpec, str, str]], run_id: str) -> EnqueueCounts: ...

    async def run(self, work: Callable[[AsyncConnection[tuple[Any, ...]]], Awaitable[T]]) -> T: ...

    def read(
        self, query: LiteralString | sql.Composed, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]: ...
