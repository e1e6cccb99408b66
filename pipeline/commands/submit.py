"""The commands behind `slng-bulk submit`, `retry-failed` and `reconcile`, as library calls.

Each opens one connection (lock, ledger, HTTP session, client), feeds rows through the worker
pool of `pipeline.flow.journey`, and with `--wait` follows the jobs to the end.
"""

from __future__ import annotations

import errno
import functools
import itertools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from pipeline.commands.connect import Connection, connect
from pipeline.config.settings import Settings
from pipeline.flow.feed import PRODUCER_BATCH
from pipeline.flow.inputs import open_sources
from pipeline.flow.journey import WorkItem
from pipeline.flow.pool import Pipeline
from pipeline.flow.signals import SignalWatch, watch_signals
from pipeline.follow.common import RETRY_REASON
from pipeline.follow.fetch import fetch_transcripts
from pipeline.follow.reconcile import SourceAdmission
from pipeline.follow.status import refresh_statuses
from pipeline.follow.wait import wait_for_jobs
from pipeline.ledger import FileRecord, FileState, HistoryKind
from pipeline.logs import log
from pipeline.observe.stats import RunStats, write_summary_json
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.iterable_rows import RowInput, object_rows
from pipeline.sources.pathmap import PathMap
from pipeline.sources.rows import FileSpec, JobSettings, Rejection, Row


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
        write_summary_json(Path(settings.summary_json), stats)
    return stats


async def resubmit_failed(settings: Settings, *, handle_signals: bool = False) -> RunStats:
    """`retry-failed`: every file whose job FAILED on the server becomes a new job (history kept).

    Statuses are refreshed first, so jobs that failed since the last look are included. A file that
    changed or vanished since it was submitted is rejected and keeps its failed job. Rerunnable: a
    file renewed by an interrupted earlier run (new job_id, job not created yet) is taken again.
    Files are read where `--path-map` says they live on this host; they keep their recorded
    identity (path, file key, job ids), as with `work`.
    """
    path_map = PathMap.parse(settings.path_map)
    stats: RunStats | None = None
    async with watch_signals(handle_signals) as signals, connect(settings) as conn:
        ledger = conn.ledger
        with signals.stoppable():
            await refresh_statuses(ledger, conn.client, conn.policy)
        work = list(work_from_ledger(ledger.renewed_not_created(HistoryKind.RETRY_FAILED), path_map))
        for record in [r for r in ledger.records([FileState.CREATED.value]) if r.job_status == "FAILED"]:
            if signals.caught is not None:
                break  # no new job for a file the stopping run would not send
            item = next(work_from_ledger([record], path_map))
            if isinstance(item, WorkItem):
                reason = f"{RETRY_REASON}: {record.job_error or 'no message'}"
                new_job_id = derive_job_id(record.file_key, record.generation + 1)
                renewed = await ledger.renew(record, new_job_id, HistoryKind.RETRY_FAILED, reason)
                item = WorkItem(item.spec, renewed.file_key, renewed.job_id)
            work.append(item)
        pipeline = Pipeline(settings, ledger, conn.client, conn.session, conn.rates, signals)
        stats = await pipeline.run_items(functools.partial(_send_work, pipeline, work))
        if settings.wait and not (stats.auth_failure or stats.interrupted):
            with signals.stoppable():
                await follow_through(conn, stats)
    return finish_stats(settings, stats, signals)


async def _send_work(
    pipeline: Pipeline, work: Sequence[WorkItem | Rejection], send: MemoryObjectSendStream[WorkItem]
) -> None:
    """The producer of a retry-failed run: the files decided up front; rejections recorded in turn."""
    with pipeline.producer_scope, send:
        for item in work:
            if pipeline.stopping.is_set():
                return
            pipeline.stats.rows_seen += 1
            if isinstance(item, Rejection):
                await pipeline.reject(item)
            else:
                await send.send(item)


async def admit_sources(conn: Connection, sources: Sequence[str]) -> SourceAdmission:
    """Record every valid file of `sources` in the ledger (state pending) without any remote call.

    Used by reconcile: with the files' deterministic job_ids in the ledger, the server's job list
    can be matched to them. Use the same settings as the original submit (they are part of the id).
    """
    rows = open_sources(sources, conn.settings)
    run_id = f"reconcile-{uuid.uuid4().hex[:8]}"
    result = SourceAdmission()

    def next_batch() -> list[tuple[Row, str, bool]]:
        batch = list(itertools.islice(rows, PRODUCER_BATCH))
        keys = [file_key(row) if isinstance(row, FileSpec) else "" for row in batch]
        known = conn.ledger.glance([k for k in keys if k])
        return [(row, key, key in known) for row, key in zip(batch, keys, strict=True)]

    while batch := await anyio.to_thread.run_sync(next_batch):
        for row, key, known in batch:
            if not isinstance(row, FileSpec):
                result.rejected += 1
                log.warning("rejected: %s", row.message())
                continue
            admission = await conn.ledger.admit(row, key, derive_job_id(key, 0, row.job_id), run_id)
            if admission.record is None:
                result.refused += 1
                log.warning("not admitted: %s: %s", row.path, admission.refusal)
            elif known:
                result.known += 1
            else:
                result.added += 1
    await conn.ledger.flush()  # admissions are applied, not committed: reconcile reads them next
    return result


def spec_at(record: FileRecord, path: Path) -> FileSpec:
    """The row of a file the ledger knows, read from `path`: where it lives on this host, which
    `--path-map` may make another path than the recorded one (the file's identity either way)."""
    return FileSpec(
        source=record.source,
        line=record.line,
        path=path,
        size=record.size,
        mtime_ns=record.mtime_ns,
        job_id=None,
        settings=JobSettings.model_validate_json(record.settings_json),
        relative_path=record.relative_path,
    )


def work_from_ledger(records: Iterable[FileRecord], path_map: PathMap) -> Iterator[WorkItem | Rejection]:
    """Work on files the ledger knows, under their recorded file key and job id, read where
    `path_map` says they live here. A file that vanished or changed is rejected, under its recorded
    path (so `report --path` finds the rejection beside the file)."""
    for record in records:
        local = path_map.local(record.path)
        elsewhere = f" at {local}" if local != record.path else ""
        try:
            st = Path(local).stat()
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                hint = ""
            elif elsewhere:
                hint = "; check --path-map"
            else:
                hint = " (moved? --path-map FROM=TO reads files where they are now)"
            why = f"file is gone: {exc.strerror}{elsewhere}{hint}"
            yield Rejection(record.source, record.line, record.path, why)
            continue
        if st.st_size != record.size or st.st_mtime_ns != record.mtime_ns:
            why = f"file changed since it was submitted{elsewhere}"
            yield Rejection(record.source, record.line, record.path, why)
            continue
        yield WorkItem(spec_at(record, Path(local)), record.file_key, record.job_id)


async def follow_through(conn: Connection, stats: RunStats) -> None:
    """`--wait`: poll until every job is terminal (or --wait-timeout), then fetch with --out."""
    settings = conn.settings
    report = await wait_for_jobs(conn.ledger, conn.client, conn.policy, settings.wait_timeout)
    stats.job_statuses = dict(report.by_status)
    stats.jobs_failed = [f"{path} (job {job_id}): {message}" for path, job_id, message in report.failed_jobs]
    stats.jobs_failed += [
        f"{path} (job {job_id}): the server no longer knows this job (404)"
        for path, job_id in report.missing_jobs
    ]
    if report.open_jobs:
        stats.interrupted = (
            f"--wait-timeout {settings.wait_timeout:g} s reached with {report.open_jobs} jobs open"
        )
    if settings.out is not None:
        fetched = await fetch_transcripts(
            conn.ledger,
            conn.client,
            conn.session,
            Path(settings.out),
            settings.formats,
            conn.policy,
            delete_after=settings.delete_after_fetch,
            concurrency=settings.concurrency,
        )
        stats.transcripts_written = fetched.written
        stats.fetch_errors = [f"{path}: {message}" for path, message in fetched.errors]
        for path, fmt in fetched.missing:
            log.warning("no %s transcript on the server for %s", fmt, path)
        if fetched.deleted:
            log.info("deleted %d jobs on the server after fetching their transcripts", fetched.deleted)
