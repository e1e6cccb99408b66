"""`report`: per-file results exported from the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import click

from pipeline.cli.options import LEDGER_SETTINGS, settings_options
from pipeline.cli.running import fail, load_command_settings
from pipeline.errors import ConfigError, SlngBulkError
from pipeline.observe.logs import log


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl", "json"]), default="csv", show_default=True
)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(["pending", "presigned", "uploaded", "creating", "created", "failed", "rejected"]),
    help="Only files in these states (repeatable).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Write to this file (mode 0600) instead of stdout.",
)
@settings_options(LEDGER_SETTINGS)
def report(
    fmt: Literal["csv", "jsonl", "json"], states: tuple[str, ...], output: Path | None, **flags: Any
) -> None:
    """Export per-file results from the ledger."""
    import io
    import sqlite3

    from pipeline.ledger.sqlite import Ledger
    from pipeline.observe.stats import export_rows, write_export, write_private

    try:
        settings = load_command_settings(flags)
        if not settings.ledger.exists():
            raise ConfigError(f"no ledger at {settings.ledger}")
        ledger = Ledger.open(settings.ledger)
        try:
            ledger.count_by_state()  # not a ledger (or another program's database): say so before any output
            rows = export_rows(ledger, states)
            if output is None:
                write_export(rows, fmt)
            else:
                buffer = io.StringIO()
                count = write_export(rows, fmt, buffer)
                write_private(output, buffer.getvalue())
                log.info("wrote %d rows to %s", count, output)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot read ledger {settings.ledger}: {exc}") from None
    except SlngBulkError as exc:
        fail(exc)
