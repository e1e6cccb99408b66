"""`--wait` (and `pipeline.wait`): follow submitted jobs to the end, then fetch their transcripts."""

from __future__ import annotations

from pathlib import Path

from pipeline.commands.connect import Connection
from pipeline.follow.fetch import fetch_transcripts
from pipeline.follow.wait import wait_for_jobs
from pipeline.logs import log
from pipeline.observe.stats import RunStats


async def follow_through(conn: Connection, stats: RunStats) -> None:
    """`--wait`: poll until every job is terminal (or --wait-timeout), then fetch with --out."""
    settings = conn.settings
    report = await wait_for_jobs(conn.ledger, conn.client, conn.policy, settings.wait_timeout)
    stats.job_statuses = dict(report.by_status)
    stats.jobs_failed = [
        f"{path} (job {job_id}): {message}"
        for path, job_id, message in report.failed_jobs
        if job_id not in stats.failed_job_ids  # already listed as a file's failure from an earlier run
    ]
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
