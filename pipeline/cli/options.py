"""Command-line options generated from the settings model.

Each `Settings` field becomes one option whose flag (`--max-create-rps`), environment variable
(`SLNG_BULK_MAX_CREATE_RPS`) and config-file key (`max_create_rps`) name the same setting, so a
setting cannot exist in one place and be missing in another. Commands pick the settings they use
from the tuples below.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import click
from pydantic.fields import FieldInfo

from pipeline.config.settings import ENV_PREFIX, Settings

F = TypeVar("F", bound=Callable[..., Any])

SUBMIT_SETTINGS = tuple(name for name in Settings.model_fields)
LEDGER_SETTINGS = ("config", "ledger", "log_format", "log_level")
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
FETCH_SETTINGS = (*FOLLOW_SETTINGS, "out", "formats", "delete_after_fetch")
RECONCILE_SETTINGS = (
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
    """Decorate a command with one option per named setting, in the given order."""

    def decorate(func: F) -> F:
        for name in reversed(names):
            func = _option(name, Settings.model_fields[name])(func)
        return func

    return decorate
