"""Run settings: one pydantic-settings model is the single list of knobs.

Each field is at once a command-line flag (`--max-create-rps`), an environment variable
(`SLNG_BULK_MAX_CREATE_RPS`) and a key of the TOML config file (`max_create_rps = 10`), with the
precedence flag > environment > file > default. The CLI builds its options from this model, so a
setting cannot exist in one place and be missing in another.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import tomllib
import typing
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from pipeline.api.models import (
    DEFAULT_MODEL_CODE,
    OutputConfig,
    OutputFormat,
    SrtOverrides,
    Tracking,
    TranscriptionConfig,
)
from pipeline.config.problems import plain_words, shown_value, unknown_key
from pipeline.errors import ConfigError
from pipeline.logs import log
from pipeline.sources.pathmap import PathMap
from pipeline.sources.readers import SourceOptions
from pipeline.sources.rows import JobSettings, check_extra, quote, split_tags
from pipeline.sources.shard import Shard as ShardSpec
from pipeline.storage.cloud.cloud_options import DEFAULT_SIGN_EXPIRY, MAX_SIGN_EXPIRY, CloudOptions

ENV_PREFIX = "SLNG_BULK_"
DEFAULT_CONFIG_FILES = (Path("slng-bulk.toml"), Path("~/.config/slng-bulk/config.toml"))
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> Any:
    """'1M', '512k', '50MiB', '2G' or a plain number of bytes. Decimal units unless 'i' is given."""
    if value is None or isinstance(value, int | float):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"not a size: {quote(str(value))} (examples: 1048576, 512k, 1M, 50MiB)")
    number, unit, binary = float(match.group(1)), match.group(2).lower(), bool(match.group(3))
    power = "kmgt".index(unit) + 1 if unit else 0
    return int(number * (1024 if binary else 1000) ** power)


Size = Annotated[int, BeforeValidator(parse_size)]
OptionalSize = Annotated[int | None, BeforeValidator(parse_size)]


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.split(",")) if part]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]


def _split_tag_text(value: Any) -> Any:
    return split_tags(value) if isinstance(value, str) else value


TagList = Annotated[list[str], NoDecode, BeforeValidator(_split_tag_text)]  # as the CSV `tags` column


def _json_object(value: Any) -> Any:
    """A JSON object given as text (flag, environment) or already a table (config file)."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at character {exc.pos + 1})") from None
    if not isinstance(parsed, dict):
        raise ValueError('expected a JSON object, e.g. {"summarization": true}')
    return parsed


def _checked_extra(value: Any) -> Any:
    return check_extra(value) if isinstance(value, dict) else value


JsonObject = Annotated[
    dict[str, Any] | None, NoDecode, BeforeValidator(_checked_extra), BeforeValidator(_json_object)
]  # as the CSV `extra` column


def wanted_formats(values: Iterable[str]) -> list[str]:
    """Known transcript formats, case-insensitive and deduplicated, at least one; else ValueError
    (pydantic's validation error for a setting; `follow.downloads.check_formats` makes it a usage error)."""
    known = typing.get_args(OutputFormat)
    wanted: list[str] = []
    for value in (v.strip().lower() for v in values):
        if value not in known:
            raise ValueError(f"unknown transcript format {value}: choose from {', '.join(known)}")
        if value not in wanted:
            wanted.append(value)
    if not wanted:
        raise ValueError(f"no transcript format given: choose from {', '.join(known)}")
    return wanted


FormatList = Annotated[CommaList, AfterValidator(wanted_formats)]


def _check_path_map(rules: list[str]) -> list[str]:
    PathMap.parse(rules)  # a malformed rule is refused here, naming it
    return rules


PathMapRules = Annotated[CommaList, AfterValidator(_check_path_map)]


def _check_host_port(value: str | None) -> str | None:
    """`HOST:PORT` (IPv6 hosts in brackets), port 0 meaning any free one."""
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9464)")
    return value


HostPort = Annotated[str | None, AfterValidator(_check_host_port)]


def _ledger_text(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


LedgerTarget = Annotated[str, BeforeValidator(_ledger_text)]  # a path (str or Path) or a URL


def _parse_shard(value: Any) -> Any:
    return Shard.parse(value) if isinstance(value, str) else value


Shard = Annotated[ShardSpec, NoDecode, BeforeValidator(_parse_shard), PlainSerializer(str)]


def check_api_key(key: SecretStr) -> SecretStr:
    """A key as pasted: stripped; empty or with spaces, control or non-ASCII characters refused.
    The message never quotes the key: it is the secret."""
    text = key.get_secret_value().strip()
    if not text:
        raise ValueError("the API key is empty")
    if any(not ch.isprintable() or ch.isspace() or not ch.isascii() for ch in text):
        raise ValueError(
            "the API key contains spaces, control or non-ASCII characters (a copy-paste accident?)"
        )
    return SecretStr(text)


ApiKey = Annotated[SecretStr, AfterValidator(check_api_key)]


class Settings(BaseSettings):
    """Every setting of every command. Descriptions double as `--help` text."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    config: Path | None = Field(
        default=None,
        description="TOML config file (default: ./slng-bulk.toml, then ~/.config/slng-bulk/config.toml).",
    )
    # --- connection ---
    api_url: str = Field(default="https://api.batch.slng.ai", description="Base URL of the SLNG Batch API.")
    api_key: ApiKey | None = Field(
        default=None,
        description="API key. Prefer the variable SLNG_API_KEY (it wins over its alias SLNG_BULK_API_KEY)"
        " or --api-key-file: a flag shows in `ps`.",
    )
    api_key_file: Path | None = Field(default=None, description="File holding the API key (first line).")
    allow_insecure_http: bool = Field(
        default=False, description="Allow plain http to non-loopback API and upload hosts."
    )
    sandbox: bool = Field(
        default=False,
        description="Start the built-in sandbox in-process and run against it (no key, no network).",
    )
    # --- ledger and run control ---
    ledger: LedgerTarget = Field(
        default="slng-bulk.db",
        description="Results ledger: a SQLite file, or postgresql://user@host/db for one ledger shared by "
        "several hosts (enqueue, work).",
    )
    shard: Shard | None = Field(
        default=None,
        description="Take only shard I of N (I/N) of the sources: N independent runs split one manifest "
        "without a shared ledger.",
    )
    lease_timeout: float = Field(
        default=60.0,
        ge=1,
        le=86400,
        description="work: seconds without a heartbeat after which a worker's files go to other workers.",
    )
    host_name: str | None = Field(
        default=None,
        description="work, retry-failed: this machine's name in the shared ledger's fleet view "
        "(default: its hostname).",
    )
    path_map: PathMapRules = Field(
        default_factory=list,
        description="work, retry-failed: where the files the ledger recorded (on another host, or "
        "before they moved) live here, as FROM=TO path prefixes (comma-separated).",
    )
    concurrency: int = Field(default=8, ge=1, le=1024, description="Files in flight at once.")
    chunk_size: Size = Field(
        default=1024 * 1024,
        ge=4096,
        le=64 * 1024 * 1024,
        description="Upload read buffer per file (e.g. 1M).",
    )
    retries: int = Field(default=6, ge=0, le=100, description="Retries per step for transient errors.")
    retry_max_elapsed: float = Field(
        default=600.0, gt=0, description="Seconds a file may spend retrying, all its steps together."
    )
    max_outage: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="Seconds to wait out an outage (the API or S3 not answering at all, a shared "
        "ledger's database restarting) before the run ends with exit 11, nothing failed.",
    )
    stall_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Abort and retry an upload that accepts no byte for this many seconds.",
    )
    request_timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for an API response.")
    max_create_rps: float = Field(default=10.0, gt=0, description="Job creations per second, whole pool.")
    max_presign_rps: float = Field(default=10.0, gt=0, description="Presign requests per second, whole pool.")
    max_read_rps: float = Field(
        default=50.0, gt=0, description="Status/list/files reads per second, whole pool."
    )
    max_bandwidth: OptionalSize = Field(
        default=None, gt=0, description="Total upload bytes per second (e.g. 50M); unlimited by default."
    )
    max_failures: int | None = Field(
        default=None, ge=1, description="Stop taking new files after this many permanent failures."
    )
    settle: float = Field(
        default=0.0, ge=0, description="Skip files modified within this many seconds (still being written)."
    )
    grace: float = Field(
        default=30.0, ge=0, description="On SIGINT/SIGTERM, seconds to let in-flight files finish."
    )
    max_duration: float | None = Field(
        default=None, gt=0, description="Stop taking new files after this many seconds, like SIGTERM."
    )
    force: bool = Field(default=False, description="Resubmit files already done (as new jobs).")
    dry_run: bool = Field(
        default=False, description="Validate every row and file and print totals; no remote call."
    )
    error_on_nothing: bool = Field(
        default=False, description="Exit with code 7 when there was nothing to do."
    )
    # --- follow-through ---
    wait: bool = Field(default=False, description="After submitting, poll until every job is DONE or FAILED.")
    wait_timeout: float = Field(default=3600.0, gt=0, description="Give up waiting after this many seconds.")
    out: Path | None = Field(
        default=None, description="Download transcripts into this folder (with --wait, or fetch)."
    )
    formats: FormatList = Field(
        default_factory=lambda: ["json", "txt", "srt"], description="Transcript formats to download."
    )
    delete_after_fetch: bool = Field(
        default=False, description="Delete jobs on the server once their transcripts are on disk."
    )
    # --- sources ---
    include: CommaList = Field(
        default_factory=list,
        description=(
            "Folder and cloud-prefix sources: only files matching one of these globs, matched on the"
            " path below the source. * and ? stay within one name (never cross /), ** spans folders;"
            " a pattern without / matches a file or folder name at any depth (2026-01-01 takes that"
            " folder's files), one with / is anchored at the source's top (2026-01/*.wav). A pattern"
            " that matches nothing is warned of."
        ),
    )
    exclude: CommaList = Field(
        default_factory=list,
        description="Folder and cloud-prefix sources: leave out files and whole folders matching these"
        " globs (the same rules as --include).",
    )
    null: bool = Field(
        default=False,
        description="Paths on stdin (-) separated by NUL bytes, as find -print0 writes them (also -0).",
    )
    follow_symlinks: bool = Field(
        default=False, description="Directory sources: follow symbolic links (never in a loop)."
    )
    # --- audio already in object storage (s3://, gs://, az:// sources and url rows) ---
    s3_endpoint: str | None = Field(
        default=None,
        description="S3-compatible endpoint (MinIO, LocalStack, R2...) for s3:// sources; default: AWS.",
    )
    s3_region: str | None = Field(
        default=None, description="S3 region; default: the AWS profile's, else us-east-1."
    )
    gcs_endpoint: str | None = Field(
        default=None, description="Google Cloud Storage endpoint for gs:// sources (an emulator)."
    )
    azure_endpoint: str | None = Field(
        default=None,
        description="Azure Blob endpoint for az:// sources, with the account (Azurite: "
        "http://127.0.0.1:10000/devstoreaccount1); default: the account named by AZURE_STORAGE_ACCOUNT_NAME.",
    )
    cloud_allow_http: bool = Field(
        default=False, description="Allow plain http to the cloud endpoints above (emulators, a LAN store)."
    )
    sign_expiry: float = Field(
        default=DEFAULT_SIGN_EXPIRY.total_seconds(),
        ge=1,
        le=MAX_SIGN_EXPIRY.total_seconds(),
        description="Seconds an object's GET URL stays valid; signed just before its job is created "
        "(default 6 h: the service may fetch it after a wait in its queue).",
    )
    # --- defaults for every row (a manifest row's own values override them) ---
    language: str | None = Field(default=None, description="Default transcription language (e.g. en).")
    operating_point: Literal["standard", "enhanced"] | None = Field(
        default=None, description="Default accuracy tier."
    )
    diarization: Literal["none", "speaker", "channel"] | None = Field(
        default=None, description="Default speaker separation."
    )
    domain: str | None = Field(default=None, description="Default domain language model.")
    output_locale: str | None = Field(default=None, description="Default output locale.")
    enable_entities: bool | None = Field(default=None, description="Default entity formatting.")
    model_code: str = Field(default=DEFAULT_MODEL_CODE, description="Model to use.")
    tags: TagList = Field(
        default_factory=list, description="Default tracking tags, comma-separated (as in the CSV column)."
    )
    srt_max_line_length: int | None = Field(
        default=None, ge=1, description="Default SRT max characters per line."
    )
    srt_max_lines: int | None = Field(default=None, ge=1, description="Default SRT max lines per block.")
    extra: JsonObject = Field(
        default=None,
        description="transcription_config keys the models do not name, a JSON object sent as given.",
    )
    # --- output ---
    progress: Literal["auto", "bar", "lines", "none"] = Field(
        default="auto", description="Progress display: a bar on a terminal, plain lines otherwise."
    )
    progress_interval: float = Field(
        default=10.0, gt=0, description="Seconds between progress lines when not on a terminal."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log line format (json for log collectors)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description="Event loop: uvloop when installed (the fast extra), or force asyncio's or uvloop's.",
    )
    summary_json: Path | None = Field(default=None, description="Write the run's JSON summary to this file.")
    metrics_addr: HostPort = Field(
        default=None,
        description="Serve Prometheus metrics of the run at http://HOST:PORT/metrics while it runs.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _use_environment.get():
            return (
                init_settings,
                env_settings,
                TomlConfigSettingsSource(settings_cls, toml_file=_config_file()),
            )
        # A library caller's arguments, and the config file only if it named one.
        named = _config_path_override.get()
        if named is None:
            return (init_settings,)
        return (init_settings, TomlConfigSettingsSource(settings_cls, toml_file=named))

    @model_validator(mode="after")
    def _key_from_file(self) -> Settings:
        # Reached with api_key unset only when no source above the config file gave a key
        # (`load_settings` resolves those): the config file's api_key_file is the last resort.
        if self.api_key is None and self.api_key_file is not None:
            self.api_key = SecretStr(_read_key_file(self.api_key_file))
        if self.api_key is not None:
            try:
                self.api_key = check_api_key(self.api_key)  # again: it may come from a key file
            except ValueError as exc:
                raise ValueError(f"api_key: {exc}") from None
        return self

    def source_options(self) -> SourceOptions:
        """How sources are read: the directory-walk settings."""
        return SourceOptions(
            include=tuple(self.include),
            exclude=tuple(self.exclude),
            follow_symlinks=self.follow_symlinks,
            allow_http_urls=self.allow_insecure_http or self.sandbox,
            null_separated=self.null,
        )

    def cloud_options(self) -> dict[str, CloudOptions]:
        """How each cloud's client is made, by URL scheme (s3, gs, az)."""
        expiry = dt.timedelta(seconds=self.sign_expiry)
        http = self.cloud_allow_http

        def options(endpoint: str | None, region: str | None = None) -> CloudOptions:
            return CloudOptions(endpoint=endpoint, allow_http=http, region=region, sign_expiry=expiry)

        return {
            "s3": options(self.s3_endpoint, self.s3_region),
            "gs": options(self.gcs_endpoint),
            "az": options(self.azure_endpoint),
        }

    def job_defaults(self) -> JobSettings:
        """The settings every row starts from."""
        srt = None
        if self.srt_max_line_length is not None or self.srt_max_lines is not None:
            srt = SrtOverrides(max_line_length=self.srt_max_line_length, max_lines=self.srt_max_lines)
        return JobSettings(
            transcription_config=TranscriptionConfig(
                language=self.language,
                operating_point=self.operating_point,
                diarization=self.diarization,
                domain=self.domain,
                output_locale=self.output_locale,
                enable_entities=self.enable_entities,
            ),
            tracking=Tracking(tags=list(self.tags)) if self.tags else None,
            output_config=OutputConfig(srt_overrides=srt) if srt else None,
            model_code=self.model_code,
            extra=self.extra,
        )


KEY_FILE_MAX_BYTES = 64 * 1024


def _read_key_file(path: Path) -> str:
    """The first non-empty line of a key file (or a pipe: `--api-key-file <(pass slng)`).

    Bounded: a device such as /dev/zero is refused, and at most 64 KiB is read.
    """
    try:
        mode = path.stat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise ValueError(f"api_key_file: {path} is not a regular file")
        with path.open("rb") as stream:
            raw = stream.read(KEY_FILE_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"api_key_file: {path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"api_key_file: cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > KEY_FILE_MAX_BYTES:
        raise ValueError(f"api_key_file: {path} is larger than {KEY_FILE_MAX_BYTES} bytes; not a key file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"api_key_file: {path} is not UTF-8 text") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"api_key_file: {path} is empty")
    return lines[0]


# The --config of the load in progress. pydantic-settings asks for its sources through a classmethod
# (`settings_customise_sources`) that cannot take arguments, so the choice travels in a context
# variable: each thread and each task has its own, and two loads at once cannot see each other's.
_config_path_override: ContextVar[Path | None] = ContextVar("slng_bulk_config_path", default=None)
# Whether the load in progress reads SLNG_BULK_* and the config file (the command line does; a
# library caller opts in), carried the same way.
_use_environment: ContextVar[bool] = ContextVar("slng_bulk_use_environment", default=False)


def _config_file() -> Path | None:
    override = _config_path_override.get()
    if override is not None:
        return override
    from_env = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if from_env:
        return Path(from_env)
    for candidate in DEFAULT_CONFIG_FILES:
        expanded = candidate.expanduser()
        if expanded.is_file():
            return expanded
    return None


KEY_VARIABLE = "SLNG_API_KEY"  # the documented variable for the key
KEY_ALIAS = f"{ENV_PREFIX}API_KEY"  # the generic SLNG_BULK_<SETTING> name, kept as an alias


def _key_above_config_file(flags: dict[str, Any]) -> str | None:
    """The key from the strongest source above the config file, or None.

    Precedence: --api-key, --api-key-file, SLNG_API_KEY, SLNG_BULK_API_KEY, SLNG_BULK_API_KEY_FILE,
    then the config file's api_key and api_key_file. pydantic-settings alone would rank every
    api_key source above every api_key_file one, and knows one variable per field; so the key is
    resolved here and handed to the model as a flag.
    """
    if flags.get("api_key") is not None:
        return None  # already the strongest source
    if flags.get("api_key_file") is not None:
        return _read_key_file(Path(flags["api_key_file"]))
    canonical, alias = os.environ.get(KEY_VARIABLE) or None, os.environ.get(KEY_ALIAS) or None
    if canonical is not None and alias is not None and canonical.strip() != alias.strip():
        log.warning("%s and %s are both set and differ: using %s", KEY_VARIABLE, KEY_ALIAS, KEY_VARIABLE)
    if canonical is not None or alias is not None:
        return canonical if canonical is not None else alias
    key_file = os.environ.get(f"{ENV_PREFIX}API_KEY_FILE")
    return _read_key_file(Path(key_file)) if key_file else None


def load_settings(*, environment: bool = False, **flags: Any) -> Settings:
    """Settings from the given values alone, or with `environment=True` (as the command line does)
    also from SLNG_BULK_* variables and the config file, below the values; a clear error otherwise.

    A library caller's settings are what it passed, so that a variable set for some other run on the
    same host, or a ./slng-bulk.toml in the working folder, never changes what a program does.
    """
    config = flags.get("config")
    token = _config_path_override.set(Path(config) if config is not None else None)
    environment_token = _use_environment.set(environment)
    try:
        given = {name: value for name, value in flags.items() if value is not None}
        if not environment:
            if config is not None and not Path(config).is_file():
                raise ConfigError(f"config file {config} does not exist or is not a regular file")
            return _from_values(given)
        chosen = _config_file()
        if (config is not None or os.environ.get(f"{ENV_PREFIX}CONFIG")) and chosen is not None:
            if not chosen.exists():
                raise ConfigError(f"config file {chosen} does not exist")
            if not chosen.is_file():
                raise ConfigError(f"config file {chosen} is not a regular file")
        try:
            key = _key_above_config_file(given)
        except ValueError as exc:  # an unreadable key file, named by the message
            raise ConfigError(f"invalid setting {exc}") from None
        if key is not None:
            given["api_key"] = key
        return _from_values(given)
    finally:
        _use_environment.reset(environment_token)
        _config_path_override.reset(token)


def _source_of(name: str, given: dict[str, Any]) -> str:
    """Where the load in progress took setting `name` from: a flag (or the library caller's
    argument), an environment variable, or the config file, in that order of precedence."""
    command_line = _use_environment.get()
    if name in given:
        return f"--{name.replace('_', '-')}" if command_line else f"argument {name}"
    variables = (KEY_VARIABLE, KEY_ALIAS) if name == "api_key" else (f"{ENV_PREFIX}{name.upper()}",)
    for variable in variables if command_line else ():
        if variable in os.environ:
            return f"variable {variable}"
    return f"config file {_config_file()}, key {name}"


def _problem(error: ErrorDetails, given: dict[str, Any]) -> str:
    """One validation error as a line that names the setting, its source and the fix."""
    loc = tuple(str(part) for part in error["loc"])
    if not loc:
        return f"invalid settings: {plain_words(error)}"
    name = loc[0]
    if error["type"] == "extra_forbidden":
        where = f"config file {_config_file()}" if name not in given else "the arguments to load_settings"
        return unknown_key(".".join(loc), where, Settings.model_fields)
    value = shown_value(name, error.get("input"))
    got = f" (got {value})" if value is not None else ""
    return f"invalid setting {'.'.join(loc)} (from {_source_of(name, given)}): {plain_words(error)}{got}"


def _from_values(given: dict[str, Any]) -> Settings:
    """The model built from `given` (and whatever sources the load in progress allows)."""
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = [_problem(error, given) for error in exc.errors(include_url=False)]
        raise ConfigError("; ".join(problems)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {_config_file()} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {_config_file()} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"config file {_config_file()}: {exc.strerror or exc}") from None
    except SettingsError as exc:
        raise ConfigError(f"invalid setting: {exc}") from None
