"""`submit`: every file named by the sources, through the worker pool, as a library call.

It opens one connection (lock, ledger, HTTP session, client), feeds rows through the worker pool
(`pipeline.flow.pool`), and with `--wait` follows the jobs to the end (`commands.wait`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import aiohttp

from pipeline.commands.connect import connect
from pipeline.commands.run import finish_stats, follow_if_asked, run_context
from pipeline.config.settings import Settings
from pipeline.flow.context import ResultCallback, StopHandle
from pipeline.flow.inputs import open_sources
from pipeline.flow.pool import Pool
from pipeline.flow.signals import watch_signals
from pipeline.flow.work_source import SourceRows
from pipeline.observe.stats import RunStats
from pipeline.sources.checks import WalkTally
from pipeline.sources.iterable_rows import RowInput, object_rows


async def submit(
    sources: Sequence[str],
    settings: Settings,
    *,
    session: aiohttp.ClientSession | None = None,
    on_result: ResultCallback | None = None,
    stop: StopHandle | None = None,
    handle_signals: bool = False,
) -> RunStats:
    """Submit every file named by `sources` (manifests, folders, "-" for stdin); the run's counters.

    With `settings.wait`, then follow the jobs to the end and, with `settings.out`, fetch
    transcripts. `session`: an aiohttp session of the caller's to send through (it stays open);
    `on_result`: called with each file's outcome; `stop`: a handle that stops the run gracefully.
    A refused key raises `AuthenticationError` once the counters are saved.
    """
    tally = WalkTally()
    rows = open_sources(sources, settings, tally)
    source = SourceRows(rows, trickle="-" in sources)
    return await _submit(source, settings, session, on_result, stop, handle_signals, tally)


async def submit_rows(
    items: Iterable[RowInput],
    settings: Settings,
    *,
    session: aiohttp.ClientSession | None = None,
    on_result: ResultCallback | None = None,
    stop: StopHandle | None = None,
    handle_signals: bool = False,
) -> RunStats:
    """Like `submit`, for rows built in memory: paths, or dicts with the JSONL manifest's keys.

    The iterable is consumed lazily, in batches, as the pool takes work (from a worker thread, so a
    generator may block): it never needs to fit in memory.
    """
    rows = object_rows(items, settings.job_defaults(), settings.source_options())
    return await _submit(SourceRows(rows), settings, session, on_result, stop, handle_signals)


async def _submit(
    source: SourceRows,
    settings: Settings,
    session: aiohttp.ClientSession | None,
    on_result: ResultCallback | None,
    stop: StopHandle | None,
    handle_signals: bool,
    tally: WalkTally | None = None,
) -> RunStats:
    stats: RunStats | None = None
    async with watch_signals(handle_signals) as signals, connect(settings, session=session) as conn:
        stats = await Pool(run_context(conn, signals, on_result, stop)).run_source(source)
        if tally is not None:  # what folder walks left out, for the summary
            stats.skipped_links, stats.skipped_hidden = tally.links, tally.hidden
        await follow_if_asked(conn, stats, signals)
    return finish_stats(settings, stats, signals)
