"""The commands behind `slng-bulk submit`, `retry-failed` and `reconcile`, as library calls.

Each opens one connection (lock, ledger, HTTP session, client), feeds rows through the worker
pool of `pipeline.flow.journey`, and with `--wait` follows the jobs to the end.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import anyio

from pipeline.config.settings import Settings
from pipeline.flow.connect import Connection, connect
from pipeline.flow.feed import PRODUCER_BATCH
from pipeline.flow.inputs import open_sources
from pipeline.flow.pool import Pipeline
from pipeline.follow.common import RETRY_REASON
from pipeline.follow.fetch import fetch_transcripts
from pipeline.follow.reconcile import SourceAdmission
from pipeline.follow.status import refresh_statuses
from pipeline.follow.wait import wait_for_jobs
from pipeline.ledger import FileRecord, FileState, HistoryKind
from pipeline.observe.logs import log
from pipeline.observe.stats import RunStats, write_summary_json
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.iterable_rows import RowInput, object_rows
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
    async with connect(settings) as conn:
        pipeline = Pipeline(settings, conn.ledger, conn.client, conn.session, conn.rates)
        stats = await pipeline.run(rows, handle_signals, trickle=trickle)
        if settings.wait and not (stats.auth_failure or stats.interrupted):
            await follow_through(conn, stats)
    if settings.summary_json is not None:
        write_summary_json(Path(settings.summary_json), stats)
    return stats


async def resubmit_failed(settings: Settings, *, handle_signals: bool = False) -> RunStats:
    """`retry-failed`: every file whose job FAILED on the server becomes a new job (history kept).

    Statuses are refreshed first, so jobs that failed since the last look are included. A file that
    changed or vanished since it was submitted is rejected and keeps its failed job. Rerunnable: a
    file renewed by an interrupted earlier run (new job_id, job not created yet) is taken again.
    """
    async with connect(settings) as conn:
        ledger = conn.ledger
        await refresh_statuses(ledger, conn.client, conn.policy)
        rows: list[Row] = list(rows_from_ledger(ledger.renewed_not_created(HistoryKind.RETRY_FAILED)))
        for record in [r for r in ledger.records([FileState.CREATED.value]) if r.job_status == "FAILED"]:
            row = next(rows_from_ledger([record]))
            if isinstance(row, FileSpec):
                reason = f"{RETRY_REASON}: {record.job_error or 'no message'}"
                new_job_id = derive_job_id(record.file_key, record.generation + 1)
                await ledger.renew(record, new_job_id, HistoryKind.RETRY_FAILED, reason)
            rows.append(row)
        pipeline = Pipeline(settings, ledger, conn.client, conn.session, conn.rates)
        stats = await pipeline.run(iter(rows), handle_signals)
        if settings.wait and not (stats.auth_failure or stats.interrupted):
            await follow_through(conn, stats)
    if settings.summary_json is not None:
        write_summary_json(Path(settings.summary_json), stats)
    return stats


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


def rows_from_ledger(records: Iterable[FileRecord]) -> Iterator[Row]:
    """Rebuild rows for files the ledger knows; a file that changed or vanished is rejected."""
    for record in records:
        path = Path(record.path)
        try:
            st = path.stat()
        except OSError as exc:
            yield Rejection(record.source, record.line, record.path, f"file is gone: {exc.strerror}")
            continue
        if st.st_size != record.size or st.st_mtime_ns != record.mtime_ns:
            yield Rejection(record.source, record.line, record.path, "file changed since it was submitted")
            continue
        yield FileSpec(
            source=record.source,
            line=record.line,
            path=path,
            size=record.size,
            mtime_ns=record.mtime_ns,
            job_id=None,
            settings=JobSettings.model_validate_json(record.settings_json),
            relative_path=record.relative_path,
        )


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
