"""`submit`: every file named by the sources, through the worker pool, as a library call.

It opens one connection (lock, ledger, HTTP session, client), feeds rows through the worker pool
(`pipeline.flow.pool`), and with `--wait` follows the jobs to the end (`commands.wait`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from pipeline.commands.connect import connect
from pipeline.commands.wait import follow_through
from pipeline.config.settings import Settings
from pipeline.flow.inputs import open_sources
from pipeline.flow.pool import Pipeline
from pipeline.flow.signals import SignalWatch, watch_signals
from pipeline.observe.stats import RunStats, write_summary_json
from pipeline.sources.iterable_rows import RowInput, object_rows
from pipeline.sources.rows import Row


async def submit(sources: Sequence[str], settings: Settings, *, handle_signals: bool = False) -> RunStats:
    """Submit every file named by `sources`; return the run's counters. The library entry point.

    With `settings.wait`, then follow the jobs to the end and, with `settings.out`, fetch transcripts.
    """
    rows = open_sources(sources, settings)
    return await _submit(rows, settings, handle_signals=handle_signals, trickle="-" in sources)


async def submit_rows(
    items: Iterable[RowInput], settings: Settings, *, handle_signals: bool = False
) -> RunStats:
    """Like `submit`, for rows built in memory: paths, or dicts with the JSONL manifest's keys.

    The iterable is consumed lazily, in batches, as the pool takes work (from a worker thread, so a
    generator may block): it never needs to fit in memory.
    """
    rows = object_rows(items, settings.job_defaults(), settings.source_options())
    return await _submit(rows, settings, handle_signals=handle_signals, trickle=False)


async def _submit(
    rows: Iterator[Row], settings: Settings, *, handle_signals: bool, trickle: bool
) -> RunStats:
    stats: RunStats | None = None
    async with watch_signals(handle_signals) as signals, connect(settings) as conn:
        pipeline = Pipeline(settings, conn.ledger, conn.client, conn.session, conn.rates, signals)
        stats = await pipeline.run(rows, trickle=trickle)
        if settings.wait and not (stats.auth_failure or stats.interrupted):
            with signals.stoppable():
                await follow_through(conn, stats)
    return finish_stats(settings, stats, signals)


def finish_stats(settings: Settings, stats: RunStats | None, signals: SignalWatch) -> RunStats:
    """The run's counters, written to --summary-json. A signal after the pool (during the wait, the
    fetch, the close) marks the run stopped too (exit 6); a second one that ended the command
    before its run began leaves an empty run, stopped."""
    if stats is None:
        stats = RunStats(run_id=uuid.uuid4().hex[:12])
    if signals.caught is not None and not stats.interrupted:
        stats.interrupted = f"signal {signals.caught.name}"
    if settings.summary_json is not None:
        write_summary_json(Path(settings.summary_json), stats, stats.exit_code(settings.error_on_nothing))
    return stats
