"""The worker pool: a producer feeding a bounded channel, 2 x concurrency workers sharing
`concurrency` slots, the deadline watcher, and the handler of the command's signals while it runs.
Each worker runs one file's journey (`flow.journey`) at a time; rows come from sources (`run`) or
claims on a shared ledger (`run_items`, used by `flow.work`).
"""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.errors import AuthenticationError, LedgerWriteError, OutageError
from pipeline.flow.admission import Verdict
from pipeline.flow.feed import PRODUCER_BATCH, RowFeed
from pipeline.flow.journey import Journey, WorkItem
from pipeline.ledger import Glance
from pipeline.logs import log
from pipeline.observe.progress import ProgressDisplay
from pipeline.observe.stats import RunStats
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.rows import FileSpec, Rejection, Row

Producer = Callable[[MemoryObjectSendStream[WorkItem]], Coroutine[Any, Any, None]]
ItemHook = Callable[[WorkItem], Coroutine[Any, Any, None]]


class Pipeline(Journey):
    """One run: journeys for every row, `concurrency` at a time, until the rows run out or a stop."""

    async def produce(self, rows: RowFeed, send: MemoryObjectSendStream[WorkItem]) -> None:
        """Stream rows into the bounded channel; decide skips with one ledger query per batch."""
        with self._producer_scope, send:
            while not self.stopping.is_set():
                # Abandoned on stop: a thread blocked reading stdin must not hold the run open.
                batch = await anyio.to_thread.run_sync(self._next_batch, rows, abandon_on_cancel=True)
                if not batch:
                    return
                now_ns = time.time_ns()
                for row, key, known in batch:
                    if self.stopping.is_set():
                        return
                    self.stats.rows_seen += 1
                    if isinstance(row, Rejection):
                        await self.reject(row)
                        continue
                    state, error_class = (known.state, known.error_class) if known else (None, None)
                    verdict = self.rules.verdict(state, error_class, mtime_ns=row.mtime_ns, now_ns=now_ns)
                    if verdict in (Verdict.SKIP_DONE, Verdict.SKIP_FAILED):
                        self.stats.skipped_done += 1
                    elif verdict is Verdict.SKIP_UNSETTLED:
                        self.stats.skipped_unsettled += 1
                    else:
                        job_id = known.job_id if known is not None else derive_job_id(key, 0, row.job_id)
                        await send.send(WorkItem(row, key, job_id))

    def _next_batch(self, rows: RowFeed) -> list[tuple[Row, str, Glance | None]]:
        """In a worker thread: take the rows read so far (at most a batch) and look them up."""
        batch = rows.next_batch(PRODUCER_BATCH)
        keys = [file_key(row) if isinstance(row, FileSpec) else "" for row in batch]
        known = self.ledger.glance([k for k in keys if k])
        return [(row, key, known.get(key)) for row, key in zip(batch, keys, strict=True)]

    async def work(
        self, receive: MemoryObjectReceiveStream[WorkItem], finished: ItemHook | None = None
    ) -> None:
        async with receive:
            async for item in receive:
                async with self.slots:
                    if self.stopping.is_set():
                        return  # items still queued were never admitted: nothing to record
                    try:
                        await self.process(item)
                    finally:
                        if finished is not None:
                            with anyio.CancelScope(shield=True):
                                await finished(item)

    def on_signal(self, cancel_workers: anyio.CancelScope, signum: signal.Signals) -> None:
        """First SIGINT/SIGTERM: stop taking files, give in-flight ones `--grace`. Second: stop now."""
        self.signalled = True
        if self.stopping.is_set() and self.stats.interrupted and self.stats.interrupted.startswith("signal"):
            log.warning("second signal: stopping now")
            cancel_workers.cancel()
            return
        self.stop(f"signal {signum.name}")
        cancel_workers.deadline = min(cancel_workers.deadline, anyio.current_time() + self.settings.grace)

    async def watch_deadline(self, cancel_workers: anyio.CancelScope) -> None:
        assert self.settings.max_duration is not None
        await anyio.sleep(self.settings.max_duration)
        self.stop(f"--max-duration {self.settings.max_duration:g} s reached")
        cancel_workers.deadline = min(cancel_workers.deadline, anyio.current_time() + self.settings.grace)

    async def run(self, rows: Iterator[Row], *, trickle: bool = False) -> RunStats:
        """Feed `rows` through the pool until they run out, a stop is asked for, or the key is refused."""
        feed = RowFeed(rows, chunk=1 if trickle else 64)
        return await self.run_items(functools.partial(self.produce, feed))

    @property
    def producer_scope(self) -> anyio.CancelScope:
        """What a producer runs in: `stop()` cancels it, so a producer blocked on a slow source
        (stdin, a claim query) does not hold the run open."""
        return self._producer_scope

    async def run_items(self, producer: Producer, *, finished: ItemHook | None = None) -> RunStats:
        """Run the pool on what `producer` sends (rows of sources, or claims on a shared ledger)
        until it ends, a stop is asked for, or the key is refused. The producer runs in
        `producer_scope` and closes the channel when done. `finished` is called with each item the
        pool is done with, whatever became of it.

        A ledger that stops taking writes (LedgerWriteError) ends the run at once: nothing could be
        recorded any more, so workers are cancelled where they are (what was committed is where a
        rerun resumes) and the error is raised, unless a signal had already asked for the stop.
        An outage past --max-outage (OutageError) ends it the same way: the files waiting for the
        API or S3 stay where the ledger has them, none failed, and a rerun resumes.
        """
        await self.ledger.start_run(self.stats.run_id)
        log.info(
            "run %s started: concurrency %d, ledger %s",
            self.stats.run_id,
            self.settings.concurrency,
            self.ledger.location,
            extra={"fields": {"event": "run_started", "run_id": self.stats.run_id}},
        )
        send, receive = anyio.create_memory_object_stream[WorkItem](max_buffer_size=self.settings.concurrency)
        display = ProgressDisplay(
            self.stats, self.settings.progress, self.settings.progress_interval, self.settings.log_format
        )
        fatal: LedgerWriteError | OutageError | None = None
        try:
            with display:
                async with anyio.create_task_group() as outer:
                    outer.start_soon(display.run)
                    with (
                        anyio.CancelScope() as cancel_workers,
                        self.signals.handled_by(functools.partial(self.on_signal, cancel_workers)),
                    ):
                        if self.settings.max_duration is not None:
                            outer.start_soon(self.watch_deadline, cancel_workers)
                        async with anyio.create_task_group() as pool:
                            pool.start_soon(producer, send)
                            # Twice the workers, `concurrency` slots: a file backing off lends its
                            # slot, so up to `concurrency` files are always being worked on.
                            for _ in range(2 * self.settings.concurrency):
                                pool.start_soon(self.work, receive.clone(), finished)
                            receive.close()
                    if cancel_workers.cancelled_caught:
                        log.warning("grace period over: in-flight files stopped where the ledger says")
                    outer.cancel_scope.cancel()
        except AuthenticationError as exc:
            self.stats.auth_failure = str(exc)
            log.error("%s", exc)
        except (LedgerWriteError, OutageError) as exc:
            fatal = exc
        except BaseExceptionGroup as group:
            failed_ledger = group.subgroup(LedgerWriteError) or group.subgroup(OutageError)
            auth = group.subgroup(AuthenticationError)
            if failed_ledger is not None:
                first = _first(failed_ledger)
                assert isinstance(first, LedgerWriteError | OutageError)
                fatal = first
            elif auth is not None:
                self.stats.auth_failure = str(_first(auth))
                log.error("%s", self.stats.auth_failure)
            else:
                raise
        finally:
            self.stats.rates = self.rates.snapshot()
            if not isinstance(fatal, LedgerWriteError):
                with anyio.CancelScope(shield=True):
                    try:
                        await self.ledger.finish_run(self.stats.run_id, self.stats.summary())
                    except LedgerWriteError as exc:
                        fatal = exc
        if fatal is not None:
            if not self.signalled:
                raise fatal from None
            log.error("%s", fatal)  # stopped by the signal; the ledger says where
        return self.stats


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
