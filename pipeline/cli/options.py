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

from pipeline.config.problems import plain_words
from pipeline.config.settings import ENV_PREFIX, Settings, parse_size

F = TypeVar("F", bound=Callable[..., Any])

# What the commands use, by concern. A command's options are the union of the groups it needs, so an
# option that would do nothing for a command (`retry-failed --include`) is not offered by it.
COMMON = ("config", "ledger", "log_format", "log_level")
ASYNC_RUN = ("event_loop",)  # the commands whose work runs on an event loop (all but report)
API = ("api_url", "api_key", "api_key_file", "allow_insecure_http")
REQUESTS = (
    "concurrency",
    "retries",
    "retry_max_elapsed",
    "max_outage",
    "request_timeout",
    "max_read_rps",
)
UPLOADS = (
    "chunk_size",
    "stall_timeout",
    "max_create_rps",
    "max_presign_rps",
    "max_bandwidth",
    "max_failures",
    "grace",
    "max_duration",
    "error_on_nothing",
    "progress",
    "progress_interval",
    "summary_json",
)
METRICS = ("metrics_addr",)  # the commands that run a worker pool for a while
FETCHING = ("out", "formats", "delete_after_fetch")
WAITING = ("wait", "wait_timeout")
IN_PROCESS_SANDBOX = ("sandbox",)  # the built-in sandbox, its state kept beside the ledger
WALK = ("include", "exclude", "follow_symlinks", "null")
# Audio in object storage: where each cloud's store is, and how long a signed GET URL lives.
CLOUD = ("s3_endpoint", "s3_region", "gcs_endpoint", "azure_endpoint", "cloud_allow_http", "sign_expiry")
ADMISSION = ("settle", "force", "dry_run", "shard")  # how submit takes files from its sources
# A host among others on one ledger: its name there, and where it sees the files the ledger records.
# retry-failed takes these too (it reads recorded files, and writes as this host); not the lease,
# since it claims nothing.
HOST_VIEW = ("host_name", "path_map")
SHARED_LEDGER = ("lease_timeout", *HOST_VIEW)  # a worker among others on one ledger
ROW_DEFAULTS = (
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
    "extra",
)


def command_settings(*groups: tuple[str, ...]) -> tuple[str, ...]:
    """The settings of these groups, in the model's order (so --help lists them alike everywhere)."""
    wanted = {name for group in groups for name in group}
    unknown = wanted - set(Settings.model_fields)
    if unknown:
        raise AssertionError(f"not settings: {sorted(unknown)}")
    return tuple(name for name in Settings.model_fields if name in wanted)


SUBMIT_SETTINGS = command_settings(
    COMMON,
    ASYNC_RUN,
    API,
    REQUESTS,
    UPLOADS,
    FETCHING,
    WAITING,
    IN_PROCESS_SANDBOX,
    WALK,
    CLOUD,
    ADMISSION,
    ROW_DEFAULTS,
    METRICS,
)
RETRY_SETTINGS = command_settings(
    COMMON, ASYNC_RUN, API, REQUESTS, UPLOADS, FETCHING, WAITING, IN_PROCESS_SANDBOX, HOST_VIEW, CLOUD
)
FOLLOW_SETTINGS = command_settings(COMMON, ASYNC_RUN, API, REQUESTS, IN_PROCESS_SANDBOX)
FETCH_SETTINGS = command_settings(COMMON, ASYNC_RUN, API, REQUESTS, FETCHING, IN_PROCESS_SANDBOX)
RECONCILE_SETTINGS = command_settings(
    COMMON, ASYNC_RUN, API, REQUESTS, WALK, CLOUD, ROW_DEFAULTS, IN_PROCESS_SANDBOX
)
LEDGER_SETTINGS = command_settings(COMMON)
ENQUEUE_SETTINGS = command_settings(COMMON, ASYNC_RUN, WALK, CLOUD, ROW_DEFAULTS)
WORK_SETTINGS = command_settings(COMMON, ASYNC_RUN, API, REQUESTS, UPLOADS, SHARED_LEDGER, CLOUD, METRICS)


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
            messages = [plain_words(e) for e in exc.errors(include_url=False)]
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


class SettingOption(click.Option):
    """An option generated from a settings field; `setting` names the field."""

    def __init__(self, *args: Any, setting: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setting = setting


def setting_name_of(param: click.Parameter) -> str | None:
    """The settings field behind a command's parameter, if it is one."""
    return param.setting if isinstance(param, SettingOption) else None


def _human_size(count: int) -> str:
    for unit, power in (("GiB", 3), ("MiB", 2), ("KiB", 1)):
        if count % 1024**power == 0:
            return f"{count // 1024**power}{unit}"
    return str(count)


def _default_text(name: str, field: FieldInfo) -> str | None:
    """The model's default as a user would type it, for `--help`; None when there is none."""
    default = field.get_default(call_default_factory=True)
    if default is None or default == []:
        return None
    if isinstance(default, bool):
        flag = name.replace("_", "-")
        return flag if default else f"no-{flag}"
    if isinstance(default, list):
        return ",".join(str(item) for item in default)
    if isinstance(default, int) and _metavar(field) == "size":
        return _human_size(default)
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def _option(name: str, field: FieldInfo) -> Callable[[F], F]:
    flag = name.replace("_", "-")
    base = _strip_optional(field.annotation)
    default = _default_text(name, field)
    help_text = f"{field.description or ''} [env: {ENV_PREFIX}{name.upper()}]"
    common: dict[str, Any] = {
        "cls": SettingOption,
        "setting": name,
        # The click default stays unset, so that the environment, the config file or the model
        # decides; the model's default is shown in the help text itself, as click would show it.
        "default": None,
        "help": f"{help_text}  [default: {default}]" if default is not None else help_text,
    }
    if base is bool:
        return click.option(f"--{flag}/--no-{flag}", name, **common)
    click_type: click.ParamType[Any]
    if typing.get_origin(base) is Literal:
        click_type = click.Choice([str(a) for a in typing.get_args(base)])
    elif base is Path:
        click_type = click.Path(path_type=Path)  # completes file names in the shell
    else:
        click_type = SettingType(name, field)
    return click.option(f"--{flag}", name, type=click_type, **common)


_VERBOSITY = (
    click.option(
        "-v", "--verbose", count=True, help="More log output: -v for info, -vv for debug (as --log-level)."
    ),
    click.option("-q", "--quiet", count=True, help="Less log output: -q for warnings, -qq for errors only."),
)


def settings_options(names: tuple[str, ...]) -> Callable[[F], F]:
    """Decorate a command with one option per named setting, in the given order (plus -v/-q where
    the command has --log-level)."""

    def decorate(func: F) -> F:
        if "log_level" in names:
            for alias in reversed(_VERBOSITY):
                func = alias(func)
        for name in reversed(names):
            func = _option(name, Settings.model_fields[name])(func)
        return func

    return decorate


def log_level_from_aliases(flags: dict[str, Any]) -> None:
    """Fold -v/-q (taken out of `flags`) into `log_level`; with --log-level as well, a usage error."""
    verbose, quiet = flags.pop("verbose", 0) or 0, flags.pop("quiet", 0) or 0
    if not (verbose or quiet):
        return
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet contradict each other")
    if flags.get("log_level") is not None:
        raise click.UsageError("give either --log-level or -v/-q, not both")
    flags["log_level"] = (
        ("info", "debug")[min(verbose, 2) - 1] if verbose else ("warning", "error")[min(quiet, 2) - 1]
    )
