"""`submit` and `retry-failed`: the commands that upload files and create jobs."""

from __future__ import annotations

import sys
from typing import Any

import click

from pipeline.cli.options import RETRY_SETTINGS, SUBMIT_SETTINGS, settings_options
from pipeline.cli.running import fail, load_command_settings, report_run, run_pool
from pipeline.errors import ConfigError, SlngBulkError
from pipeline.ledger import ledger_missing


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("-0", "null_short", is_flag=True, help="As --null: NUL-separated paths on stdin (find -print0)")
@settings_options(SUBMIT_SETTINGS)
def submit(sources: tuple[str, ...], null_short: bool, **flags: Any) -> None:
    """Upload every file named by SOURCES (CSV or JSONL manifests, directories, or - for stdin) and
    create one transcription job per file. Safe to rerun: finished files are skipped."""
    if null_short:
        flags["null"] = True
    list_files = bool(flags.get("verbose"))  # -v: a dry run lists each file and what would happen
    try:
        settings = load_command_settings(flags)
        if settings.dry_run:
            from pipeline.commands.dry_run import dry_run  # without the HTTP stack: a dry run sends nothing

            sys.exit(int(dry_run(list(sources), settings, list_files=list_files)))
        from pipeline.commands.submit import submit as run_submit

        stats = run_pool(settings, lambda: run_submit(list(sources), settings, handle_signals=True))
    except SlngBulkError as exc:
        fail(exc)
    report_run(stats, settings, "every file is already done")


@click.command(name="retry-failed")
@settings_options(RETRY_SETTINGS)
def retry_failed(**flags: Any) -> None:
    """Resubmit files whose job FAILED on the server, as new jobs (the old ones stay in the history).
    Statuses are refreshed first; with --wait (and --out) the new jobs are followed like submit's."""
    from pipeline.commands.retry_failed import resubmit_failed

    try:
        settings = load_command_settings(flags)
        if ledger_missing(settings.ledger):
            raise ConfigError(f"no ledger at {settings.ledger}")
        stats = run_pool(settings, lambda: resubmit_failed(settings, handle_signals=True))
    except SlngBulkError as exc:
        fail(exc)
    report_run(stats, settings, "no job has FAILED")
