"""The worker pool: a work source feeding a bounded channel, 2 x concurrency workers sharing
`concurrency` slots, the deadline watcher, and the handler of the command's signals (and of a
library caller's stop handle) while it runs. Each worker runs one file's journey at a time.
"""

from __future__ import annotations

import functools
import signal
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.errors import AuthenticationError, LedgerWriteError, OutageError
from pipeline.flow.context import RunContext
from pipeline.flow.journey import Journey, WorkItem
from pipeline.flow.work_source import WorkSource
from pipeline.logs import log
from pipeline.observe.metrics import serve_metrics
from pipeline.observe.progress import ProgressDisplay
from pipeline.observe.stats import RunStats


class Pool:
    """One run: journeys for every item of a work source, `concurrency` at a time, until the
    source runs out, a stop is asked for, or the key is refused."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    async def produce(self, source: WorkSource, send: MemoryObjectSendStream[WorkItem]) -> None:
        with self.run.producer_scope, send:
            await source.produce(self.run, send)
            self.run.stats.sources_read = not self.run.stopping.is_set()  # the total is known now

    async def work(self, source: WorkSource, receive: MemoryObjectReceiveStream[WorkItem]) -> None:
        run = self.run
        async with receive:
            async for item in receive:
                async with run.slots:
                    if run.stopping.is_set():
                        return  # items still queued were never admitted: nothing to record
                    try:
                        await Journey(run, item).process()
                    finally:
                        with anyio.CancelScope(shield=True):
                            await source.finished(item)

    def stop_with_grace(self, cancel_workers: anyio.CancelScope, why: str) -> None:
        """No new files; the ones in flight get `--grace` seconds before they are stopped."""
        self.run.stop(why)
        cancel_workers.deadline = min(cancel_workers.deadline, anyio.current_time() + self.run.settings.grace)

    def on_signal(self, cancel_workers: anyio.CancelScope, signum: signal.Signals) -> None:
        """First SIGINT/SIGTERM: stop taking files, give in-flight ones `--grace`. Second: stop now."""
        run = self.run
        run.signalled = True
        if run.stopping.is_set() and run.stats.interrupted and run.stats.interrupted.startswith("signal"):
            log.warning("second signal: stopping now")
            cancel_workers.cancel()
            return
        self.stop_with_grace(cancel_workers, f"signal {signum.name}")

    async def watch_deadline(self, cancel_workers: anyio.CancelScope) -> None:
        max_duration = self.run.settings.max_duration
        assert max_duration is not None
        await anyio.sleep(max_duration)
        self.stop_with_grace(cancel_workers, f"--max-duration {max_duration:g} s reached")

    async def run_source(self, source: WorkSource) -> RunStats:
        """Run the pool on what `source` sends until it ends, a stop is asked for, or the key is
        refused.

        A ledger that stops taking writes (LedgerWriteError) ends the run at once: nothing could be
        recorded any more, so workers are cancelled where they are (what was committed is where a
        rerun resumes) and the error is raised, unless a signal had already asked for the stop.
        An outage past --max-outage (OutageError) ends it the same way: the files waiting for the
        API or S3 stay where the ledger has them, none failed, and a rerun resumes. A refused key
        ends it too, and is raised once the run's counters are saved.
        """
        run = self.run
        settings = run.settings
        await run.ledger.start_run(run.stats.run_id)
        log.info(
            "run %s started: concurrency %d, ledger %s",
            run.stats.run_id,
            settings.concurrency,
            run.ledger.location,
            extra={"fields": {"event": "run_started", "run_id": run.stats.run_id}},
        )
        send, receive = anyio.create_memory_object_stream[WorkItem](max_buffer_size=settings.concurrency)
        display = ProgressDisplay(
            run.stats, settings.progress, settings.progress_interval, settings.log_format
        )
        fatal: LedgerWriteError | OutageError | None = None
        try:
            with display, serve_metrics(settings.metrics_addr, run.stats, run.rates.live):
                async with anyio.create_task_group() as outer:
                    outer.start_soon(display.run)
                    with (
                        anyio.CancelScope() as cancel_workers,
                        run.signals.handled_by(functools.partial(self.on_signal, cancel_workers)),
                    ):
                        run.stop_handle.listen(functools.partial(self.stop_with_grace, cancel_workers))
                        if settings.max_duration is not None:
                            outer.start_soon(self.watch_deadline, cancel_workers)
                        async with anyio.create_task_group() as pool:
                            pool.start_soon(self.produce, source, send)
                            # Twice the workers, `concurrency` slots: a file backing off lends its
                            # slot, so up to `concurrency` files are always being worked on.
                            for _ in range(2 * settings.concurrency):
                                pool.start_soon(self.work, source, receive.clone())
                            receive.close()
                    if cancel_workers.cancelled_caught:
                        log.warning("grace period over: in-flight files stopped where the ledger says")
                    outer.cancel_scope.cancel()
        except AuthenticationError as exc:
            run.stats.auth_failure = str(exc)
            log.error("%s", exc)
        except (LedgerWriteError, OutageError) as exc:
            fatal = exc
        except BaseExceptionGroup as group:
            ends_run = group.subgroup(LedgerWriteError) or group.subgroup(OutageError)
            auth = group.subgroup(AuthenticationError)
            if ends_run is not None:
                first = _first(ends_run)
                assert isinstance(first, LedgerWriteError | OutageError)
                fatal = first
            elif auth is not None:
                run.stats.auth_failure = str(_first(auth))
                log.error("%s", run.stats.auth_failure)
            else:
                raise
        finally:
            run.stop_handle.listen(None)
            run.stats.rates = run.rates.snapshot()
            if not isinstance(fatal, LedgerWriteError):
                with anyio.CancelScope(shield=True):
                    try:
                        await run.ledger.finish_run(run.stats.run_id, run.stats.summary())
                    except LedgerWriteError as exc:
                        fatal = exc
        if fatal is not None:
            if not run.signalled:
                raise fatal from None
            log.error("%s", fatal)  # stopped by the signal; the ledger says where
        return run.stats


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
