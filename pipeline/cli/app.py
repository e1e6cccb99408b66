"""The `slng-bulk` command: a thin layer over the library.

Options are generated from `pipeline.config.settings.Settings`, so every flag is also an environment
variable (shown in `--help`) and a config-file key. Errors become one line on stderr and a
documented exit code, never a traceback.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import click
from pydantic.fields import FieldInfo

from pipeline import __version__
from pipeline.config.settings import ENV_PREFIX, Settings, load_settings
from pipeline.errors import ConfigError, ExitCode, SlngBulkError
from pipeline.observe.logs import configure_logging, log
from pipeline.observe.stats import summary_lines

F = TypeVar("F", bound=Callable[..., Any])

SUBMIT_SETTINGS = tuple(name for name in Settings.model_fields)
LEDGER_SETTINGS = ("config", "ledger", "log_format", "log_level")


def _click_type(annotation: Any) -> tuple[Any, bool]:
    """(click type, is_flag) for a settings field annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _click_type(args[0])
    if origin is typing.Annotated:
        return _click_type(args[0])
    if origin is Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)]), False
    if annotation is bool:
        return None, True
    if annotation is int:
        return click.INT, False
    if annotation is float:
        return click.FLOAT, False
    if annotation is Path:
        return click.Path(path_type=Path), False
    return click.STRING, False  # strings, sizes ("50M"), secrets, comma lists


def _option(name: str, field: FieldInfo) -> Callable[[F], F]:
    flag = name.replace("_", "-")
    click_type, is_flag = _click_type(field.annotation)
    help_text = f"{field.description or ''} [env: {ENV_PREFIX}{name.upper()}]"
    if is_flag:
        return click.option(f"--{flag}/--no-{flag}", name, default=None, help=help_text)
    return click.option(f"--{flag}", name, type=click_type, default=None, help=help_text)


def settings_options(names: tuple[str, ...]) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        for name in reversed(names):
            func = _option(name, Settings.model_fields[name])(func)
        return func

    return decorate


def _settings(flags: dict[str, Any]) -> Settings:
    if flags.get("api_key"):
        click.echo(
            "warning: --api-key shows in the process list; prefer SLNG_API_KEY or --api-key-file", err=True
        )
    settings = load_settings(**flags)
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _fail(exc: SlngBulkError) -> typing.NoReturn:
    click.echo(f"slng-bulk: error: {exc}", err=True)
    sys.exit(int(exc.exit_code))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="slng-bulk")
def main() -> None:
    """Push large batches of audio into the SLNG Batch transcription API."""


@main.command()
@click.argument("sources", nargs=-1, required=True)
@settings_options(SUBMIT_SETTINGS)
def submit(sources: tuple[str, ...], **flags: Any) -> None:
    """Upload every file named by SOURCES (CSV or JSONL manifests, directories, or - for stdin) and
    create one transcription job per file. Safe to rerun: finished files are skipped."""
    from pipeline.flow.commands import submit as run_submit
    from pipeline.flow.dryrun import dry_run

    try:
        settings = _settings(flags)
        if settings.dry_run:
            sys.exit(int(dry_run(list(sources), settings)))
        stats = anyio.run(lambda: run_submit(list(sources), settings, handle_signals=True))
    except SlngBulkError as exc:
        _fail(exc)
    for line in summary_lines(stats):
        click.echo(line, err=True)
    if stats.nothing_to_do():
        click.echo("nothing to do: every file is already done", err=True)
    sys.exit(int(stats.exit_code(settings.error_on_nothing)))


FOLLOW_SETTINGS = (
    "config",
    "api_url",
    "api_key",
    "api_key_file",
    "allow_insecure_http",
    "ledger",
    "concurrency",
    "retries",
    "retry_max_elapsed",
    "request_timeout",
    "max_create_rps",
    "max_read_rps",
    "log_format",
    "log_level",
)


@main.command()
@settings_options(FOLLOW_SETTINGS)
def status(**flags: Any) -> None:
    """Refresh the server status of every submitted job that is not finished; print counts by status
    (stdout) and each FAILED job with the server's message (stderr). Exit 1 when some job FAILED."""
    from pipeline.flow.connect import connect
    from pipeline.follow.jobs import refresh_statuses

    async def run(settings: Settings) -> ExitCode:
        if not await anyio.Path(settings.ledger).exists():
            raise ConfigError(f"no ledger at {settings.ledger}")
        async with connect(settings) as conn:
            report = await refresh_statuses(conn.ledger, conn.client, conn.policy)
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
        bad = report.failed_jobs or report.missing_jobs or report.errors
        return ExitCode.FAILED if bad else ExitCode.OK

    _run_command(flags, run)


@main.command()
@settings_options((*FOLLOW_SETTINGS, "out", "formats", "delete_after_fetch"))
def fetch(**flags: Any) -> None:
    """Download the transcripts of DONE jobs into --out (OUT/<relative path>.<format>), atomically.
    Already downloaded outputs are skipped; a format the server did not produce is reported. Exit 1
    when some download failed."""
    from pipeline.flow.connect import connect
    from pipeline.follow.jobs import check_formats, fetch_transcripts, refresh_statuses

    async def run(settings: Settings) -> ExitCode:
        if settings.out is None:
            raise ConfigError("fetch needs --out DIR")
        check_formats(settings.formats)
        if not await anyio.Path(settings.ledger).exists():
            raise ConfigError(f"no ledger at {settings.ledger}")
        async with connect(settings) as conn:
            statuses = await refresh_statuses(conn.ledger, conn.client, conn.policy)
            report = await fetch_transcripts(
                conn.ledger,
                conn.client,
                conn.session,
                settings.out,
                settings.formats,
                conn.policy,
                delete_after=settings.delete_after_fetch,
                concurrency=settings.concurrency,
            )
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

    _run_command(flags, run)


@main.command(name="retry-failed")
@settings_options(SUBMIT_SETTINGS)
def retry_failed(**flags: Any) -> None:
    """Resubmit files whose job FAILED on the server, as new jobs (the old ones stay in the history).
    Statuses are refreshed first; with --wait (and --out) the new jobs are followed like submit's."""
    from pipeline.flow.commands import resubmit_failed

    try:
        settings = _settings(flags)
        if not Path(settings.ledger).exists():
            raise ConfigError(f"no ledger at {settings.ledger}")
        stats = anyio.run(lambda: resubmit_failed(settings, handle_signals=True))
    except SlngBulkError as exc:
        _fail(exc)
    for line in summary_lines(stats):
        click.echo(line, err=True)
    if stats.nothing_to_do():
        click.echo("nothing to do: no job has FAILED", err=True)
    sys.exit(int(stats.exit_code(settings.error_on_nothing)))


@main.command()
@click.argument("sources", nargs=-1)
@settings_options(
    (
        *FOLLOW_SETTINGS,
        "include",
        "exclude",
        "follow_symlinks",
        "language",
        "operating_point",
        "diarization",
        "domain",
        "output_locale",
        "enable_entities",
        "model_code",
        "tags",
        "srt_max_line_length",
        "srt_max_lines",
    )
)
def reconcile(sources: tuple[str, ...], **flags: Any) -> None:
    """Rebuild the ledger from the server: match server jobs to files by job_id. With SOURCES, files
    missing from the ledger (a lost or new ledger) are first added, so a later submit duplicates nothing.
    Give the same settings as the original submit: they are part of each file's job_id."""
    from pipeline.flow.commands import admit_sources
    from pipeline.flow.connect import connect
    from pipeline.follow.jobs import reconcile as run_reconcile

    async def run(settings: Settings) -> ExitCode:
        async with connect(settings) as conn:
            if sources:
                admitted = await admit_sources(conn, list(sources))
                click.echo(
                    f"sources: {admitted.added} files added to the ledger, {admitted.known} already in it, "
                    f"{admitted.rejected} rows rejected, {admitted.refused} refused",
                    err=True,
                )
            report = await run_reconcile(conn.ledger, conn.client, conn.policy)
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

    _run_command(flags, run)


def _run_command(flags: dict[str, Any], run: Callable[[Settings], Any]) -> None:
    try:
        settings = _settings(flags)
        code = anyio.run(run, settings)
    except SlngBulkError as exc:
        _fail(exc)
    sys.exit(int(code))


@main.command()
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

    from pipeline.ledger import open_ledger
    from pipeline.observe.stats import export_rows, write_export, write_private

    try:
        settings = _settings(flags)
        if not settings.ledger.exists():
            raise SlngBulkError(f"no ledger at {settings.ledger}")
        ledger = open_ledger(settings.ledger)
        rows = export_rows(ledger, states)
        if output is None:
            write_export(rows, fmt)
        else:
            buffer = io.StringIO()
            count = write_export(rows, fmt, buffer)
            write_private(output, buffer.getvalue())
            log.info("wrote %d rows to %s", count, output)
    except SlngBulkError as exc:
        _fail(exc)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar=f"{ENV_PREFIX}SANDBOX_HOST",
    help="Address to bind (keep it on loopback: the sandbox has no real security).",
)
@click.option(
    "--api-port",
    type=int,
    default=8765,
    show_default=True,
    envvar=f"{ENV_PREFIX}SANDBOX_API_PORT",
    help="API port (0 = any free port).",
)
@click.option(
    "--s3-port",
    type=int,
    default=8766,
    show_default=True,
    envvar=f"{ENV_PREFIX}SANDBOX_S3_PORT",
    help="S3 port (0 = any free port).",
)
@click.option(
    "--faults",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar=f"{ENV_PREFIX}SANDBOX_FAULTS",
    help="TOML or JSON fault plan.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=f"{ENV_PREFIX}SANDBOX_DATA_DIR",
    help="Keep jobs and objects here across restarts (default: in memory).",
)
@click.option(
    "--job-step-seconds",
    type=float,
    default=2.0,
    show_default=True,
    envvar=f"{ENV_PREFIX}SANDBOX_JOB_STEP_SECONDS",
    help="Time between job status steps.",
)
@click.option(
    "--s3-endpoint",
    envvar=f"{ENV_PREFIX}SANDBOX_S3_ENDPOINT",
    help="Presign for this external S3-compatible endpoint (LocalStack, a real bucket) instead.",
)
@click.option("--s3-access-key", envvar=f"{ENV_PREFIX}SANDBOX_S3_ACCESS_KEY", help="External S3 access key.")
@click.option("--s3-secret-key", envvar=f"{ENV_PREFIX}SANDBOX_S3_SECRET_KEY", help="External S3 secret key.")
@click.option("--s3-bucket", envvar=f"{ENV_PREFIX}SANDBOX_S3_BUCKET", help="Bucket (external mode).")
@click.option("--s3-region", default="us-east-1", show_default=True, envvar=f"{ENV_PREFIX}SANDBOX_S3_REGION")
def sandbox(
    host: str,
    api_port: int,
    s3_port: int,
    faults: Path | None,
    data_dir: Path | None,
    job_step_seconds: float,
    s3_endpoint: str | None,
    s3_access_key: str | None,
    s3_secret_key: str | None,
    s3_bucket: str | None,
    s3_region: str,
) -> None:
    """Run the local SLNG Batch API emulator (API + strict S3) in the foreground."""
    from pipeline.sandbox import FaultPlan, SandboxConfig, serve

    try:
        plan = FaultPlan.from_file(faults) if faults else FaultPlan()
        config = SandboxConfig(
            host=host,
            api_port=api_port,
            s3_port=s3_port,
            faults=plan,
            data_dir=data_dir,
            job_step_seconds=job_step_seconds,
            s3_endpoint=s3_endpoint,
            s3_access_key=s3_access_key,
            s3_secret_key=s3_secret_key,
            s3_bucket=s3_bucket,
            s3_region=s3_region,
        )
    except (ValueError, OSError) as exc:
        _fail(ConfigError(f"sandbox: {exc}".splitlines()[0]))
    serve(config)


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["ExitCode", "main"]
