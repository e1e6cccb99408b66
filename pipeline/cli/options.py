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
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from pipeline.config.settings import ENV_PREFIX, Settings, parse_size

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


if TYPE_CHECKING:
    _ParamType = click.ParamType[Any]
else:  # click releases before ParamType became generic cannot be subscripted at run time
    _ParamType = click.ParamType


class SettingType(_ParamType):
    """A flag value parsed by the settings model's own validator for that field.

    So a flag accepts exactly what the environment variable and the config key accept (`--chunk-size
    1M` like `SLNG_BULK_CHUNK_SIZE=1M`), and a bad value is still a usage error of that flag.
    """

    def __init__(self, name: str, field: FieldInfo) -> None:
        self.name = _metavar(field)
        self._adapter: TypeAdapter[Any] = TypeAdapter(field.rebuild_annotation())

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self._adapter.validate_python(value)
        except ValidationError as exc:
            messages = [str(e["msg"]).removeprefix("Value error, ") for e in exc.errors(include_url=False)]
            self.fail("; ".join(messages), param, ctx)


def _metavar(field: FieldInfo) -> str:
    if any(getattr(m, "func", None) is parse_size for m in field.metadata):
        return "size"
    base = _strip_optional(field.annotation)
    if typing.get_origin(base) is list:
        return "list"
    return {int: "integer", float: "number"}.get(base, "text")


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _option(name: str, field: FieldInfo) -> Callable[[F], F]:
    flag = name.replace("_", "-")
    base = _strip_optional(field.annotation)
    help_text = f"{field.description or ''} [env: {ENV_PREFIX}{name.upper()}]"
    if base is bool:
        return click.option(f"--{flag}/--no-{flag}", name, default=None, help=help_text)
    click_type: click.ParamType[Any]
    if typing.get_origin(base) is Literal:
        click_type = click.Choice([str(a) for a in typing.get_args(base)])
    elif base is Path:
        click_type = click.Path(path_type=Path)  # completes file names in the shell
    else:
        click_type = SettingType(name, field)
    return click.option(f"--{flag}", name, type=click_type, default=None, help=help_text)


def settings_options(names: tuple[str, ...]) -> Callable[[F], F]:
    """Decorate a command with one option per named setting, in the given order."""

    def decorate(func: F) -> F:
        for name in reversed(names):
            func = _option(name, Settings.model_fields[name])(func)
        return func

    return decorate
