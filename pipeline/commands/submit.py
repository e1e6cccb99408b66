"""`submit`: every file named by the sources, through the worker pool, as a library call.

It opens one connection (lock, ledger, HTTP session, client), feeds rows through the worker pool
(`pipeline.flow.pool`), and with `--wait` follows the jobs to the end (`commands.wait`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Unpack

from pipeline.commands.connect import Connection
from pipeline.commands.run import RunHooks, run_pool
from pipeline.config.settings import Settings
from pipeline.flow.context import RunContext
from pipeline.flow.inputs import completed_lazily, open_sources
from pipeline.flow.pool import Pool
from pipeline.flow.work_source import SourceRows
from pipeline.observe.stats import RunStats
from pipeline.sources.checks import WalkTally
from pipeline.sources.iterable_rows import RowInput, object_rows


async def submit(sources: Sequence[str], settings: Settings, **hooks: Unpack[RunHooks]) -> RunStats:
    """Submit every file named by `sources` (manifests, folders, "-" for stdin); the run's counters.

    With `settings.wait`, then follow the jobs to the end and, with `settings.out`, fetch
    transcripts. `hooks` (`RunHooks`): `session`, an aiohttp session of the caller's to send through
    (it stays open); `on_result`, called with each file's outcome; `stop`, a handle that stops the
    run gracefully; `handle_signals`. A refused key raises `AuthenticationError` once the counters
    are saved.
    """
    tally = WalkTally()
    rows = open_sources(sources, settings, tally)
    source = SourceRows(rows, trickle="-" in sources)

    async def run_and_count(_conn: Connection, run: RunContext) -> RunStats:
        stats = await Pool(run).run_source(source)
        stats.skipped_links, stats.skipped_hidden = tally.links, tally.hidden  # what walks left out
        return stats

    return await run_pool(settings, hooks, run_and_count)


async def submit_rows(items: Iterable[RowInput], settings: Settings, **hooks: Unpack[RunHooks]) -> RunStats:
    """Like `submit`, for rows built in memory: paths, or dicts with the JSONL manifest's keys.

    The iterable is consumed lazily, in batches, as the pool takes work (from a worker thread, so a
    generator may block): it never needs to fit in memory.
    """
    rows = object_rows(items, settings.job_defaults(), settings.source_options())
    source = SourceRows(completed_lazily(rows, settings))  # url rows: a HEAD each, as a manifest's
    return await run_pool(settings, hooks, lambda _conn, run: Pool(run).run_source(source))
