"""`--wait` (and `pipeline.wait`): follow submitted jobs to the end, then fetch their transcripts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.commands.connect import Connection, connect
from pipeline.config.settings import Settings
from pipeline.errors import ConfigError
from pipeline.follow.downloads import FetchReport, fetch_transcripts
from pipeline.follow.polling import wait_for_jobs
from pipeline.follow.refresh import StatusReport
from pipeline.ledger import ledger_missing
from pipeline.logs import log
from pipeline.observe.stats import RunStats


@dataclass
class WaitOutcome:
    statuses: StatusReport  # as the last poll left them (open jobs remain if --wait-timeout passed)
    fetched: FetchReport | None  # with --out: what was written


async def wait(settings: Settings) -> WaitOutcome:
    """Poll every submitted job until it is finished or `settings.wait_timeout` passes, then, with
    `settings.out`, fetch the transcripts of the DONE ones."""
    if ledger_missing(settings.ledger):
        raise ConfigError(f"no ledger at {settings.ledger}")
    async with connect(settings) as conn:
        return await follow_jobs(conn)


async def follow_jobs(conn: Connection) -> WaitOutcome:
    settings = conn.settings
    statuses = await wait_for_jobs(conn.ledger, conn.client, conn.policy, settings.wait_timeout)
    fetched = None
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
        for path, fmt in fetched.missing:
            log.warning("no %s transcript on the server for %s", fmt, path)
        if fetched.deleted:
            log.info("deleted %d jobs on the server after fetching their transcripts", fetched.deleted)
    return WaitOutcome(statuses, fetched)


async def follow_through(conn: Connection, stats: RunStats) -> None:
    """`--wait` after a run: follow its jobs (and fetch with --out) into the run's counters."""
    outcome = await follow_jobs(conn)
    report = outcome.statuses
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
            f"--wait-timeout {conn.settings.wait_timeout:g} s reached with {report.open_jobs} jobs open"
        )
    if outcome.fetched is not None:
        stats.transcripts_written = outcome.fetched.written
        stats.fetch_errors = [f"{path}: {message}" for path, message in outcome.fetched.errors]
