"""What every command does around its work: load settings, turn errors into one line and an exit code."""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from typing import Any

import anyio
import click

from pipeline.config.settings import Settings, load_settings
from pipeline.errors import SlngBulkError
from pipeline.observe.logs import configure_logging


def load_command_settings(flags: dict[str, Any]) -> Settings:
    """Settings from the command's flags (plus environment and config file); logging configured."""
    if flags.get("api_key"):
        click.echo(
            "warning: --api-key shows in the process list; prefer SLNG_API_KEY or --api-key-file", err=True
        )
    settings = load_settings(**flags)
    configure_logging(settings.log_format, settings.log_level)
    return settings


def fail(exc: SlngBulkError) -> typing.NoReturn:
    """One line on stderr and the error's exit code; never a traceback."""
    click.echo(f"slng-bulk: error: {exc}", err=True)
    sys.exit(int(exc.exit_code))


def run_async_command(flags: dict[str, Any], run: Callable[[Settings], Any]) -> typing.NoReturn:
    """Load settings, run the async body, exit with the code it returns."""
    try:
        settings = load_command_settings(flags)
        code = anyio.run(run, settings)
    except SlngBulkError as exc:
        fail(exc)
    sys.exit(int(code))
