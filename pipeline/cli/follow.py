"""`status`, `fetch` and `reconcile`: the commands that follow jobs already submitted."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

import click

from pipeline.cli.options import FETCH_SETTINGS, FOLLOW_SETTINGS, RECONCILE_SETTINGS, settings_options
from pipeline.cli.running import run_async_command
from pipeline.config.settings import Settings
from pipeline.errors import ExitCode

if TYPE_CHECKING:
    from pipeline.follow.refresh import StatusReport
    from pipeline.ledger.leases import HostProgress


BESIDE_A_RUN = (
    "a run is going on this ledger: jobs refreshed beside it (files it is still sending are not "
    "counted until it records their jobs)"
)


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one document on stdout (counts, open jobs, every problem by file) for scripts.",
)
@settings_options(FOLLOW_SETTINGS)
def status(fmt: str, **flags: Any) -> None:
    """Refresh the server status of every submitted job that is not finished; print counts by status
    (stdout) and each FAILED job with the server's message (stderr). Exit 1 when some job FAILED."""
    from pipeline.commands.status import status as run_status

    async def run(settings: Settings) -> ExitCode:
        outcome = await run_status(settings)
        if outcome.beside_a_run:
            click.echo(BESIDE_A_RUN, err=True)
        if fmt == "json":
            document = status_document(outcome.report)
            document["beside_a_run"] = outcome.beside_a_run
            if outcome.fleet is not None:
                document["fleet"] = [dataclasses.asdict(host) for host in outcome.fleet]
            click.echo(json.dumps(document, indent=2))
        else:
            _print_status(outcome.report)
            if outcome.fleet is not None:
                _print_fleet(outcome.fleet)
        return ExitCode.FAILED if outcome.has_problems else ExitCode.OK

    run_async_command(flags, run)


def _print_fleet(fleet: list[HostProgress]) -> None:
    header = f"{'host':<24}{'workers':>8}{'claimed':>9}{'done':>8}{'failed':>8}{'MB/s':>8}{'took over':>11}"
    click.echo(header)
    for host in fleet:
        click.echo(
            f"{host.host[:23]:<24}{host.workers_alive:>8}{host.claimed:>9}{host.done:>8}{host.failed:>8}"
            f"{host.bytes_per_second / 1e6:>8.2f}{host.taken_over:>11}"
        )


def status_document(report: StatusReport) -> dict[str, Any]:
    """`status --format json`: what the text output says, as one JSON object."""
    return {
        "by_status": dict(sorted(report.by_status.items())),
        "open_jobs": report.open_jobs,
        "refreshed": report.refreshed,
        "listed": report.listed,
        "failed": [{"path": p, "job_id": j, "message": m} for p, j, m in report.failed_jobs],
        "not_found": [{"path": p, "job_id": j} for p, j in report.missing_jobs],
        "unknown": [{"path": p, "error": m} for p, m in report.errors],
    }


def _print_status(report: StatusReport) -> None:
    if not report.by_status:
        click.echo("no submitted jobs in this ledger", err=True)
    for name, count in sorted(report.by_status.items()):
        click.echo(f"{name:<16}{count:>8}")
    click.echo(
        f"{report.open_jobs} jobs still open; {report.refreshed} asked about"
        + (" (job list paged)" if report.listed else ""),
        err=True,
    )
    for path, job_id, message in report.failed_jobs:
        click.echo(f"FAILED {path} (job {job_id}): {message}", err=True)
    for path, job_id in report.missing_jobs:
        click.echo(f"NOT FOUND {path} (job {job_id}): the server does not know this job", err=True)
    for path, message in report.errors:
        click.echo(f"UNKNOWN {path}: {message}", err=True)


@click.command()
@settings_options(FETCH_SETTINGS)
def fetch(**flags: Any) -> None:
    """Download the transcripts of DONE jobs into --out (OUT/<relative path>.<format>), atomically.
    Already downloaded outputs are skipped; a format the server did not produce is reported. Exit 1
    when some download failed."""
    from pipeline.commands.fetch import fetch as run_fetch

    async def run(settings: Settings) -> ExitCode:
        if settings.out is None:
            # A missing argument of this command line: a usage error, unlike a bad value from a file.
            raise click.UsageError("fetch needs --out DIR (or SLNG_BULK_OUT, or out in the config file)")
        outcome = await run_fetch(settings)
        statuses, report = outcome.statuses, outcome.report
        if outcome.beside_a_run:
            click.echo(BESIDE_A_RUN, err=True)
        click.echo(
            f"{report.written} transcripts written to {settings.out}, {report.skipped} jobs already "
            f"fetched" + (f", {report.deleted} jobs deleted on the server" if report.deleted else ""),
            err=True,
        )
        if statuses.open_jobs:
            click.echo(f"{statuses.open_jobs} jobs not finished yet: run fetch again later", err=True)
        for path, fmt in report.missing:
            click.echo(f"missing: {path}: the server has no {fmt} output", err=True)
        for path, message in report.errors:
            click.echo(f"FAILED {path}: {message}", err=True)
        return ExitCode.FAILED if report.errors else ExitCode.OK

    run_async_command(flags, run)


@click.command()
@click.argument("sources", nargs=-1)
@settings_options(RECONCILE_SETTINGS)
def reconcile(sources: tuple[str, ...], **flags: Any) -> None:
    """Rebuild the ledger from the server: match server jobs to files by job_id. With SOURCES, files
    missing from the ledger (a lost or new ledger) are first added, so a later submit duplicates nothing.
    Give the same recognition settings (language, model, transcription options) as the original
    submit: they are part of each file's job_id; tags, metadata and output settings are not."""
    from pipeline.commands.reconcile import reconcile as run_reconcile

    async def run(settings: Settings) -> ExitCode:
        outcome = await run_reconcile(list(sources), settings)
        admitted, report = outcome.admitted, outcome.report
        if admitted is not None:
            click.echo(
                f"sources: {admitted.added} files added to the ledger, {admitted.known} already in it, "
                f"{admitted.rejected} rows rejected, {admitted.refused} refused",
                err=True,
            )
        click.echo(
            f"{report.matched} jobs found on the server and marked created; {report.already} already "
            f"known; {report.adopted} later resubmissions adopted; {report.historical} replaced jobs",
            err=True,
        )
        if report.missing_on_server:
            click.echo(
                f"{len(report.missing_on_server)} jobs marked created in the ledger are not listed by the "
                "server",
                err=True,
            )
        if report.unknown_on_server:
            click.echo(
                f"{len(report.unknown_on_server)} jobs on the server are unknown to this ledger:", err=True
            )
            for job_id in report.unknown_on_server[:50]:
                click.echo(f"  {job_id}", err=True)
            if len(report.unknown_on_server) > 50:
                click.echo(f"  ... and {len(report.unknown_on_server) - 50} more", err=True)
        return ExitCode.OK

    run_async_command(flags, run)
