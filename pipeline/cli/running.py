"""What every command does around its work: load settings, turn errors into one line and an exit code.

A `SlngBulkError` is an expected failure: its message and exit code. Anything else that reaches the
top is a bug: one redacted line and exit 10, with the (redacted) traceback only at debug level, so a
cron mail says what broke without dumping internals or secrets.
"""

from __future__ import annotations

import errno
import logging
import signal
import sys
import traceback
import typing
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import click

from pipeline.cli.eventloop import run_async
from pipeline.cli.options import log_level_from_aliases
from pipeline.config.settings import Settings, load_settings
from pipeline.errors import AuthenticationError, ExitCode, SlngBulkError
from pipeline.flow.signals import single_cause, watch_signals
from pipeline.logs import configure_logging, json_lines, log
from pipeline.observe.stats import RunStats, summary_lines
from pipeline.redact import redact, register_secret


def load_command_settings(flags: dict[str, Any]) -> Settings:
    """Settings from the command's flags (plus environment and config file); logging configured."""
    if flags.get("api_key") is not None and flags.get("api_key_file") is not None:
        raise click.UsageError("give --api-key or --api-key-file, not both")
    if flags.get("api_key"):
        click.echo(
            "warning: --api-key shows in the process list; prefer SLNG_API_KEY or --api-key-file", err=True
        )
    flags = dict(flags)
    log_level_from_aliases(flags)
    settings = load_settings(environment=True, **flags)
    if settings.api_key is not None:  # masked from here on, even in an internal error's traceback
        register_secret(settings.api_key.get_secret_value())
    ledger_password = urlsplit(settings.ledger).password  # a postgresql:// ledger's, likewise
    if ledger_password:
        register_secret(ledger_password)
    configure_logging(settings.log_format, settings.log_level)
    return settings


def say(text: str, level: int, event: str, **fields: object) -> None:
    """A line of the command's own on stderr: as it is, or one JSON event with --log-format json."""
    if json_lines():
        log.log(level, "%s", text, extra={"fields": {"event": event, **fields}})
    else:
        click.echo(redact(text), err=True)


def _exit_saying(code: ExitCode, text: str, level: int, event: str) -> typing.NoReturn:
    """Say why the command stops (the JSON event carries the exit code), then exit with it."""
    say(text, level, event, exit_code=int(code))
    sys.exit(int(code))


def fail(exc: SlngBulkError) -> typing.NoReturn:
    """One line on stderr and the error's exit code; never a traceback."""
    _exit_saying(exc.exit_code, f"slng-bulk: error: {exc}", logging.ERROR, "error")


def report_run(stats: RunStats, settings: Settings, nothing_to_do: str) -> typing.NoReturn:
    """A run's summary on stderr, the line for an empty run, and its documented exit code.

    The summary is a warning when the run needs a look (exit code not 0), else information: so
    `-q` (warnings) prints it only for a run that needs a look, and `-qq` (errors) never does; the
    errors themselves were logged as they happened. With --log-format json it is one
    `run_finished` event with the counts and the exit code.
    """
    code = stats.exit_code(settings.error_on_nothing)
    level = logging.INFO if code is ExitCode.OK else logging.WARNING
    if not log.isEnabledFor(level):
        sys.exit(int(code))
    empty = f"nothing to do: {nothing_to_do}" if stats.nothing_to_do() else None
    if json_lines():
        summary = stats.summary()
        summary.pop("failures")  # each was its own file_failed event
        fields = {"event": "run_finished", "exit_code": int(code), "nothing_to_do": empty, **summary}
        log.log(level, "run %s finished: exit %d", stats.run_id, int(code), extra={"fields": fields})
    else:
        for line in summary_lines(stats):
            click.echo(line, err=True)
        if empty:
            click.echo(empty, err=True)
    sys.exit(int(code))


def run_pool(settings: Settings, command: Callable[[], Awaitable[RunStats]]) -> RunStats:
    """A command that runs the worker pool, on the settings' event loop: its counters, also when
    the key was refused (the library raises that, with the counters; the summary still shows them)."""
    try:
        return run_async(command, loop=settings.event_loop)
    except AuthenticationError as exc:
        if not isinstance(exc.run_stats, RunStats):
            raise
        return exc.run_stats


def run_async_command(flags: dict[str, Any], run: Callable[[Settings], Any]) -> typing.NoReturn:
    """Load settings, run the async body until it returns or a signal comes, exit with its code."""
    try:
        settings = load_command_settings(flags)
        code, signum = run_async(_until_signalled, run, settings, loop=settings.event_loop)
    except SlngBulkError as exc:
        fail(exc)
    if signum is not None:
        _exit_saying(
            ExitCode.INTERRUPTED,
            f"slng-bulk: interrupted by {signum.name}; what the ledger recorded is kept",
            logging.WARNING,
            "interrupted",
        )
    sys.exit(int(code))


async def _until_signalled(
    run: Callable[[Settings], Any], settings: Settings
) -> tuple[Any, signal.Signals | None]:
    """`run(settings)`, ended by the first SIGINT or SIGTERM (then: None and the signal).

    For the commands without a worker pool of their own (status, fetch, reconcile): nothing of
    theirs needs a grace period, and a ledger change already queued is committed even when its
    caller is cancelled (the writer shields it), so stopping at once loses nothing recorded.
    """
    result: Any = None
    async with watch_signals(True) as signals:
        with signals.stoppable():
            result = await run(settings)
    return result, signals.caught


def internal_error(exc: Exception) -> typing.NoReturn:
    """Exit 10 with one redacted line; the traceback first, only when logging at debug."""
    cause = single_cause(exc)
    if isinstance(cause, SlngBulkError):  # an expected error that a task group wrapped
        fail(cause)
    if log.isEnabledFor(logging.DEBUG):
        click.echo(redact("".join(traceback.format_exception(exc))).rstrip(), err=True)
    text = str(cause).strip()
    first_line = text.splitlines()[0] if text else "(no message)"
    _exit_saying(
        ExitCode.INTERNAL,
        f"slng-bulk: internal error: {type(cause).__name__}: {first_line}",
        logging.CRITICAL,
        "internal_error",
    )


class SlngBulkGroup(click.Group):
    """The top-level group: whatever a command did not catch becomes `internal_error`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors (exit 2) and normal exits
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # stdout closed by `| head`: click exits quietly
            internal_error(exc)
        except Exception as exc:
            internal_error(exc)
