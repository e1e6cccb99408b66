"""SIGINT and SIGTERM for a command's whole life, from its first connect to its last close.

One receiver spans the command: asyncio puts back the default action when a signal handler is
removed, so a receiver opened only around the worker pool left what comes after it (`--wait`'s
polling, the fetch, closing the ledger) to that default: a bare exit 143, or click's "Aborted!".
What a signal does depends on what the command is doing:

- the pool is running: the pool's own handler (no new files, `--grace` for the ones in flight; a
  second signal stops them at once);
- a stoppable step (waiting for jobs, fetching, status): it ends at once; a ledger change already
  queued is still committed (the writer shields it), so nothing recorded is lost;
- anything else (connecting, closing the ledger): the signal is noted and the step finishes, so the
  ledger closes cleanly; a second signal ends the command at once.

The first signal is kept (`caught`): the command then reports itself stopped and exits 6.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio

from pipeline.logs import log

SignalHandler = Callable[[signal.Signals], None]


class SignalWatch:
    """Where the command's signals go. Inert (nothing ever arrives) unless `watch_signals(True)`."""

    def __init__(self) -> None:
        self.caught: signal.Signals | None = None  # the first signal, if any came
        self._count = 0
        self._handler: SignalHandler | None = None
        self._stoppable: list[anyio.CancelScope] = []
        self._whole: anyio.CancelScope | None = None

    def deliver(self, signum: signal.Signals) -> None:
        self._count += 1
        if self.caught is None:
            self.caught = signum
        if self._handler is not None:
            self._handler(signum)
        elif self._count > 1 and self._whole is not None:  # even inside a step (one stuck, shielded)
            log.warning("second signal: stopping now")
            self._whole.cancel()
        elif self._stoppable:
            for scope in self._stoppable:
                scope.cancel()
        else:
            log.warning("%s: stopping once this step is done (again to stop now)", signum.name)

    @contextmanager
    def handled_by(self, handler: SignalHandler) -> Iterator[None]:
        """Signals go to `handler` inside the block (the pool's). One that came before the block
        is handed to it at once: the pool then starts out stopping."""
        previous, self._handler = self._handler, handler
        try:
            if self.caught is not None:
                handler(self.caught)
            yield
        finally:
            self._handler = previous

    @contextmanager
    def stoppable(self) -> Iterator[anyio.CancelScope]:
        """A step a signal ends at once (cancelled); skipped if a signal already came."""
        with anyio.CancelScope() as scope:
            if self.caught is not None:
                scope.cancel()
            self._stoppable.append(scope)
            try:
                yield scope
            finally:
                self._stoppable.remove(scope)


@asynccontextmanager
async def watch_signals(enabled: bool) -> AsyncIterator[SignalWatch]:
    """A SignalWatch that receives SIGINT and SIGTERM while the block runs (when `enabled`; a
    library caller who handles signals itself passes False). An error of the block comes out as
    itself, never wrapped in an exception group."""
    watch = SignalWatch()
    if not enabled:
        yield watch
        return
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
            async with anyio.create_task_group() as group:
                watch._whole = group.cancel_scope
                group.start_soon(_deliver_all, received, watch)
                try:
                    yield watch
                finally:
                    group.cancel_scope.cancel()
    except BaseExceptionGroup as wrapped:
        cause = single_cause(wrapped)
        raise cause from cause.__cause__


async def _deliver_all(received: AsyncIterator[signal.Signals], watch: SignalWatch) -> None:
    async for signum in received:
        watch.deliver(signal.Signals(signum))


def single_cause(exc: BaseException) -> BaseException:
    """The one exception inside (nested) task-group wrappers, or `exc` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
