"""`report`: per-file results exported from the ledger, or one file's whole history."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import click

from pipeline.cli.options import LEDGER_SETTINGS, settings_options
from pipeline.cli.running import fail, load_command_settings
from pipeline.errors import ConfigError, SlngBulkError
from pipeline.ledger import Ledger, open_ledger, sqlite_path
from pipeline.logs import log

if TYPE_CHECKING:
    from pipeline.commands.report import History

ReportFormat = Literal["csv", "jsonl", "json", "text"]


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "json", "text"]),
    default=None,
    show_default="csv; text with --path or --job-id",
    help="Export format; one file's history is text or json.",
)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(["pending", "presigned", "uploaded", "creating", "created", "failed", "rejected"]),
    help="Only files in these states (repeatable).",
)
@click.option("--path", "file_path", help="One file's whole history: states, times, attempts, earlier jobs.")
@click.option("--job-id", help="The history of the file that has or had this job.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Write to this file (mode 0600) instead of stdout.",
)
@settings_options(LEDGER_SETTINGS)
def report(
    fmt: ReportFormat | None,
    states: tuple[str, ...],
    file_path: str | None,
    job_id: str | None,
    output: Path | None,
    **flags: Any,
) -> None:
    """Export per-file results from the ledger (CSV, JSON lines or JSON), or with --path or --job-id
    the whole history of one file. Reads only: works while a run holds the ledger."""
    one_file = file_path is not None or job_id is not None
    if file_path is not None and job_id is not None:
        raise click.UsageError("give --path or --job-id, not both")
    if one_file and states:
        raise click.UsageError("--state filters the export; it does not go with --path/--job-id")
    if one_file and fmt in ("csv", "jsonl"):
        raise click.UsageError(f"one file's history is text or json, not {fmt}")
    if not one_file and fmt == "text":
        raise click.UsageError("--format text is for one file's history (--path or --job-id)")
    try:
        settings = load_command_settings(flags)
        ledger_path = sqlite_path(settings.ledger)
        if ledger_path is not None and not ledger_path.exists():
            raise ConfigError(f"no ledger at {settings.ledger}")
        try:
            if one_file:
                _emit(_history_text(open_ledger(settings.ledger), file_path, job_id, fmt or "text"), output)
            else:
                _export(settings.ledger, states, fmt if fmt in ("jsonl", "json") else "csv", output)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot read ledger {settings.ledger}: {exc}") from None
    except SlngBulkError as exc:
        fail(exc)


def _export(
    target: str, states: tuple[str, ...], fmt: Literal["csv", "jsonl", "json"], output: Path | None
) -> None:
    """Streamed to stdout (a big ledger never sits in memory); a file is written whole, privately."""
    from pipeline.commands.report import export_rows
    from pipeline.observe.stats import write_private

    ledger = open_ledger(target)
    ledger.count_by_state()  # not a ledger (or another program's database): say so before any output
    rows = export_rows(ledger, states)
    if output is None:
        write_export(rows, fmt)
        return
    buffer = io.StringIO()
    count = write_export(rows, fmt, buffer)
    write_private(output, buffer.getvalue())
    log.info("wrote %d rows to %s", count, output)


def _history_text(ledger: Ledger, file_path: str | None, job_id: str | None, fmt: str) -> str:
    """Read with the ledger unopened: opening would take nothing, but could migrate (a write)."""
    from pipeline.commands.report import file_history

    history = file_history(ledger, path=file_path, job_id=job_id)
    if not history.files and not history.rejections:
        wanted = f"--path {file_path}" if file_path is not None else f"--job-id {job_id}"
        click.echo(f"no file in {ledger.location} matches {wanted}", err=True)
    if fmt == "json":
        return json.dumps(history.document(), indent=2) + "\n"
    return "".join(line + "\n" for line in history_lines(history))


def _emit(text: str, output: Path | None) -> None:
    from pipeline.observe.stats import write_private

    if output is None:
        click.echo(text, nl=False)
    else:
        write_private(output, text)
        log.info("wrote the history to %s", output)


ExportFormat = Literal["csv", "jsonl", "json"]
LIST_SEPARATOR = ";"  # between the transcript paths in a CSV cell


def write_export(rows: Iterable[dict[str, Any]], fmt: ExportFormat, out: IO[str] | None = None) -> int:
    from pipeline.commands.report import EXPORT_COLUMNS

    stream = out or sys.stdout
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(stream, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: LIST_SEPARATOR.join(v) if isinstance(v, list) else v for k, v in row.items()})
            count += 1
    elif fmt == "jsonl":
        for row in rows:
            stream.write(json.dumps(row) + "\n")
            count += 1
    else:
        items = list(rows)
        stream.write(json.dumps(items, indent=2) + "\n")
        count = len(items)
    return count


def history_lines(history: History) -> Iterator[str]:
    """The history as plain lines for a terminal."""
    for record in history.files:
        yield f"{record.path}"
        yield f"  source {record.source}" + (f", line {record.line}" if record.line is not None else "")
        yield (
            f"  state {record.state}, job {record.job_id} (generation {record.generation}),"
            f" attempts {record.attempts}"
        )
        if record.job_status:
            yield f"  server status {record.job_status}" + (
                f": {record.job_error}" if record.job_error else ""
            )
        if record.error:
            yield f"  last error ({record.error_class or 'unknown'}): {record.error}"
        if record.transcripts:
            yield from (f"  transcript {path}" for path in record.transcripts)
        elif record.fetched_formats:
            yield f"  transcripts on disk: {', '.join(record.fetched_formats)}"
        for name, at in record.times.items():
            if at is not None:
                yield f"  {name.replace('_', ' '):<16}{at}"
        for job in record.jobs:
            yield f"  earlier job {job.job_id}: {job.state}, replaced {job.replaced_at}" + (
                f" ({job.reason})" if job.reason else ""
            )
    for rejection in history.rejections:
        where = (
            f"{rejection.source}, line {rejection.line}" if rejection.line is not None else rejection.source
        )
        yield f"rejected {rejection.path} ({where}) at {rejection.at}: {rejection.reason}"
