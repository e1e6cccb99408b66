"""What submit, retry-failed and work share around their pool: the run's context built from the
connection and the caller's hooks, `--wait` after it, and the counters saved and judged at the end."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypedDict

import aiohttp

from pipeline.commands.connect import Connection, connect
from pipeline.commands.wait import follow_through
from pipeline.config.settings import Settings
from pipeline.errors import AuthenticationError
from pipeline.flow.context import ResultCallback, RunContext, StopHandle
from pipeline.flow.signals import SignalWatch, watch_signals
from pipeline.logs import log
from pipeline.observe.stats import RunStats, write_summary_json


class RunHooks(TypedDict, total=False):
    """What a library caller may hand a run besides its settings (all optional)."""

    session: aiohttp.ClientSession  # the caller's own session to send through; it stays open
    on_result: ResultCallback  # called with each file's outcome (a FileResult)
    stop: StopHandle  # stops the run gracefully, as SIGTERM does the command
    handle_signals: bool  # SIGINT/SIGTERM handled as the command line does (default: not)


RunBody = Callable[[Connection, RunContext], Awaitable[RunStats]]


async def run_pool(settings: Settings, hooks: RunHooks, body: RunBody) -> RunStats:
    """One pool run of a command: connect, build the run's context from the connection and the
    hooks, let `body` feed the pool, follow the jobs with --wait, then save and judge the counters."""
    stats: RunStats | None = None
    session = hooks.get("session")
    async with (
        watch_signals(hooks.get("handle_signals", False)) as signals,
        connect(settings, session=session) as conn,
    ):
        run = RunContext(
            conn.settings,
            conn.ledger,
            conn.client,
            conn.session,
            conn.rates,
            signals,
            on_result=hooks.get("on_result"),
            stop_handle=hooks.get("stop"),
        )
        try:
            stats = await body(conn, run)
        finally:
            run.close()
        await follow_if_asked(conn, stats, signals)
    return finish_stats(settings, stats, signals)


async def follow_if_asked(conn: Connection, stats: RunStats, signals: SignalWatch) -> None:
    """`--wait`: after a run that was neither refused nor stopped, follow its jobs to the end."""
    if conn.settings.wait and not (stats.auth_failure or stats.interrupted):
        with signals.stoppable():
            await follow_through(conn, stats)


def finish_stats(settings: Settings, stats: RunStats | None, signals: SignalWatch) -> RunStats:
    """The run's counters, written to --summary-json. A signal after the pool (during the wait, the
    fetch, the close) marks the run stopped too (exit 6); a second one that ended the command
    before its run began leaves an empty run, stopped. A refused key is raised from here, with the
    counters attached, once they are saved."""
    if stats is None:
        stats = RunStats(run_id=uuid.uuid4().hex[:12])
    if signals.caught is not None and not stats.interrupted:
        stats.interrupted = f"signal {signals.caught.name}"
    if stats.skipped_relabelled:
        log.warning(
            "%d done files have new tracking, metadata or output_config; not resubmitted "
            "(their jobs keep what they were made with); --force resubmits",
            stats.skipped_relabelled,
        )
    if settings.summary_json is not None:
        write_summary_json(Path(settings.summary_json), stats, stats.exit_code(settings.error_on_nothing))
    if stats.auth_failure:
        raise AuthenticationError(stats.auth_failure, run_stats=stats)
    return stats
