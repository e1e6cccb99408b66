"""`enqueue` and `work`: many hosts draining one manifest through a shared PostgreSQL ledger."""

from __future__ import annotations

import sys
from typing import Any

import click

from pipeline.cli.eventloop import run_async
from pipeline.cli.options import ENQUEUE_SETTINGS, WORK_SETTINGS, settings_options
from pipeline.cli.running import fail, load_command_settings, report_run, run_pool
from pipeline.errors import ExitCode, SlngBulkError
from pipeline.ledger import require_shared_ledger
from pipeline.observe.stats import plural


@click.command()
@click.argument("sources", nargs=-1, required=True)
@settings_options(ENQUEUE_SETTINGS)
def enqueue(sources: tuple[str, ...], **flags: Any) -> None:
    """Load every file named by SOURCES into a shared ledger (--ledger postgresql://...) once, for
    `work` processes on any number of hosts. No API call is made; files already there are kept as they
    are. Exit 3 when some rows were rejected."""
    try:
        settings = load_command_settings(flags)
        require_shared_ledger(settings.ledger, "enqueue")  # before the import needs the driver
        from pipeline.commands.fleet import enqueue as run_enqueue

        report = run_async(run_enqueue, list(sources), settings, loop=settings.event_loop)
    except SlngBulkError as exc:
        fail(exc)
    click.echo(
        f"{plural(report.added, 'file')} enqueued, {report.known} already in the ledger, "
        f"{plural(report.rejected, 'row')} rejected, {report.refused} refused",
        err=True,
    )
    sys.exit(int(ExitCode.REJECTED if report.rejected or report.refused else ExitCode.OK))


@click.command()
@settings_options(WORK_SETTINGS)
def work(**flags: Any) -> None:
    """Work on the files of a shared ledger (--ledger postgresql://...) beside other workers: claim a
    few at a time, upload them and create their jobs, until none is left. A worker that dies loses its
    files to the others after --lease-timeout. Run one per host (or several)."""
    try:
        settings = load_command_settings(flags)
        require_shared_ledger(settings.ledger, "work")  # before the import needs the driver
        from pipeline.commands.fleet import work as run_work

        stats = run_pool(settings, lambda: run_work(settings, handle_signals=True))
    except SlngBulkError as exc:
        fail(exc)
    report_run(stats, settings, "no file is left for this worker")
