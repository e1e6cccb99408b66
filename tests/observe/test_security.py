"""Secrets, safe defaults and configuration surface.

- The API key and the signing parts of every presigned URL the sandbox issued (X-Amz-Signature,
  X-Amz-Credential, X-Amz-Security-Token) appear nowhere a run writes: stderr and stdout at
  `--log-level debug` (text and JSON), the ledger (and its -wal/-shm), `report` exports in every
  format, and the summary JSON, after a run full of failures (bad rows, injected S3 5xx, expired
  URLs, failing creates).
- The in-process `--sandbox` logs its requests (aiohttp access log, signed query strings and all)
  through the same redacting handler.
- Files we write are 0600 even under umask 000; plain http to a non-loopback API is refused.
- Every setting is a `submit` flag and an environment variable, and a config-file key.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from pipeline.cli.options import SHARED_LEDGER
from pipeline.config.settings import ENV_PREFIX, Settings, load_settings
from pipeline.errors import ExitCode
from pipeline.sandbox import FaultPlan, Sandbox, SandboxConfig
from pipeline.sources.shard import Shard
from tests.support.audio import make_tree, write_wav
from tests.support.runs import run_cli

API_KEY = "sk-live-Zq8vR2mN5tW1xY7pL4kJ9hG3fD6sA0cB"
BIG_FILE_BYTES = 16044  # write_wav(seconds=1.0): 8000 16-bit samples and a 44-byte header
SIGNING_PARAMS = ("X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token")

FAULTS: dict[str, Any] = {
    "seed": 3,
    "operations": {
        # Transient S3 refusals, retried: each retry is another chance to log the URL.
        "put": {
            "errors": [{"status": 503, "nth": [1, 4]}, {"status": 500, "nth": [6]}],
            "latency": {"fixed_ms": 1200, "probability": 0.4},
        },
        # A create that keeps failing (out of retries: the file fails) and a lost response.
        "create": {"errors": [{"status": 502, "nth": [1, 2, 3]}], "lost_response": {"nth": [5]}},
    },
    # URLs that expire after 1 s while the API claims 1800: the PUT meets a 403, a fresh URL follows.
    "short_expiry": {"expires_in": 1, "fraction": 0.5, "report_actual": False},
}


class IssuedUrls:
    """Every URL the sandbox's presigner minted (PUT and GET), recorded from inside the sandbox."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self._lock = threading.Lock()

    def add(self, url: str) -> str:
        with self._lock:
            self.urls.append(url)
        return url

    def secrets(self) -> set[str]:
        """Each signing value, raw and in the percent-encoded spelling it has inside the URL."""
        found: set[str] = set()
        for url in self.urls:
            for name, value in parse_qsl(urlsplit(url).query):
                if name in SIGNING_PARAMS and value:
                    found.update({value, quote(value, safe=""), quote(value, safe="-_.~")})
        return found


@pytest.fixture
def issued() -> IssuedUrls:
    return IssuedUrls()


@pytest.fixture
def faulty_sandbox(issued: IssuedUrls) -> Iterator[Sandbox]:
    config = SandboxConfig(
        api_keys=(API_KEY,),
        job_step_seconds=0.05,
        faults=FaultPlan.model_validate(FAULTS),
        max_upload_bytes=BIG_FILE_BYTES - 1,  # the big file's create is refused with 413: it fails
    )
    sandbox = Sandbox(config)
    sandbox.listen(on_url_issued=issued.add)
    with sandbox.run_in_thread() as sb:
        yield sb


def _manifest(root: Path) -> tuple[Path, list[Path]]:
    good = make_tree(root / "audio", 8)
    big = write_wav(root / "big.wav", seconds=1.0)
    assert big.stat().st_size == BIG_FILE_BYTES
    (root / "junk.wav").write_bytes(os.urandom(2000))  # uploads and creates; the job FAILS on the server
    (root / "empty.wav").write_bytes(b"")
    manifest = root / "m.csv"
    lines = ["path,diarization,job_id,metadata"]
    lines += [f"{f},,," for f in [*good, big, root / "junk.wav"]]
    lines += [
        "missing.wav,,,",
        f"{good[0]},loud,,",
        f"{good[1]},,bad-id!,",
        f"{root / 'empty.wav'},,,",
        f'{good[2]},,,"{{""broken"": }}"',
    ]
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, good


def _written_blobs(tmp: Path, result_texts: list[str]) -> dict[str, bytes]:
    blobs = {f"output {i}": text.encode() for i, text in enumerate(result_texts)}
    for path in sorted(tmp.rglob("*")):
        if path.is_file() and path.suffix != ".wav":
            blobs[str(path.relative_to(tmp))] = path.read_bytes()
    return blobs


def _assert_no_secret(blobs: dict[str, bytes], secrets: set[str]) -> None:
    for where, blob in blobs.items():
        for secret in secrets:
            assert secret.encode() not in blob, f"a secret ({secret[:6]}...) leaked into {where}"


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_reaches_any_output_of_a_failing_debug_run(
    faulty_sandbox: Sandbox, issued: IssuedUrls, tmp_path: Path, log_format: str
) -> None:
    manifest, good = _manifest(tmp_path)
    ledger = tmp_path / "out" / "l.db"
    env = {"SLNG_API_KEY": API_KEY, "SLNG_BULK_API_URL": faulty_sandbox.api_url}
    common = ["--ledger", str(ledger), "--log-level", "debug", "--log-format", log_format]

    run = run_cli(
        "submit",
        str(manifest),
        *common,
        "--retries",
        "2",
        "--retry-max-elapsed",
        "20",
        "--concurrency",
        "4",
        "--progress",
        "lines",
        "--progress-interval",
        "0.2",
        "--summary-json",
        str(tmp_path / "out" / "summary.json"),
        "--wait",
        "--wait-timeout",
        "20",
        "--out",
        str(tmp_path / "out" / "transcripts"),
        env=env,
        cwd=tmp_path,
    )
    outputs = [run.stdout, run.stderr]
    assert run.returncode == ExitCode.FAILED, run.stderr
    assert "Traceback" not in run.stderr
    assert "big.wav" in run.stderr and "413" in run.stderr  # the refused create
    assert "junk.wav" in run.stderr  # the job that failed on the server
    for fmt in ("csv", "jsonl", "json"):
        exported = run_cli("report", "--format", fmt, *common, env=env, cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
        to_file = run_cli(
            "report", "--format", fmt, "-o", str(tmp_path / "out" / f"r.{fmt}"), *common, env=env
        )
        assert to_file.returncode == 0, to_file.stderr
        outputs += [exported.stdout, exported.stderr, to_file.stdout, to_file.stderr]
    status = run_cli("status", *common, env=env, cwd=tmp_path)
    outputs += [status.stdout, status.stderr]

    # Not vacuous: the faults fired, URLs were issued, replaced and downloaded, rows were rejected.
    injected = faulty_sandbox.stats().injected
    assert injected.get("status_503") and injected.get("status_502") and injected.get("short_expiry")
    secrets = issued.secrets() | {API_KEY}
    assert len(issued.urls) > len(good)
    assert "missing.wav" in run.stderr and "bad-id" in run.stderr
    blobs = _written_blobs(tmp_path, outputs)
    assert any(name.endswith("l.db") for name in blobs) and any("summary" in n for n in blobs)

    _assert_no_secret(blobs, secrets)
    # And nothing that looks like a signature or a bearer token, whoever minted it.
    for where, blob in blobs.items():
        text = blob.decode("utf-8", "replace")
        for match in re.finditer(
            r"(?i)X-Amz-(?:Signature|Credential|Security-Token)(?:=|%3D)([^&\s\"']*)", text
        ):
            assert match.group(1).startswith("REDACTED"), f"unredacted {match.group(0)[:40]} in {where}"
        assert not re.search(r"Bearer\s+(?!REDACTED)\S", text), where


def test_in_process_sandbox_run_at_debug_shows_no_signature(tmp_path: Path) -> None:
    """`--sandbox` runs the emulator in the same process and logs through the same handlers."""
    make_tree(tmp_path / "in", 3)
    result = run_cli(
        "submit",
        "--sandbox",
        str(tmp_path / "in"),
        "--ledger",
        str(tmp_path / "l.db"),
        "--log-level",
        "debug",
        "--progress",
        "none",
        cwd=tmp_path,
    )
    assert result.returncode == ExitCode.OK, result.stderr
    assert "sandbox running" in result.stderr
    assert not re.search(r"\b[0-9a-f]{64}\b", result.stderr), "a SigV4 signature (64 hex) leaked"
    assert "sk-sandbox-test" not in result.stderr and "sandbox-secret" not in result.stderr


SIGNED = (
    "http://127.0.0.1:9/bucket/inputs/k.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=sandbox%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z"
    "&X-Amz-Expires=1800&X-Amz-SignedHeaders=content-type%3Bhost&X-Amz-Signature=" + "ab" * 32
)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_library_loggers_warnings_and_tracebacks_are_redacted_at_debug(
    log_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp (client, server, the sandbox's access log were it on), asyncio, warnings, the root
    logger and an uncaught exception all go through the redacting handler."""
    import io
    import logging
    import sys
    import warnings

    from pipeline.logs import configure_logging
    from pipeline.redact import register_secret

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    names = ("slng_bulk", "aiohttp", "pipeline", "asyncio", "py.warnings", "filelock", "")
    saved = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate)
        for n in names
    }
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    register_secret(API_KEY)
    try:
        configure_logging(log_format, "debug")  # type: ignore[arg-type]
        logging.getLogger("aiohttp.access").info(
            '127.0.0.1 "PUT /bucket/k?%s HTTP/1.1" 200', SIGNED.split("?")[1]
        )
        logging.getLogger("aiohttp.client").debug("request to %s with Bearer %s", SIGNED, API_KEY)
        logging.getLogger("pipeline.sandbox").debug("minted %s", SIGNED)
        logging.getLogger("slng_bulk").debug("details", extra={"fields": {"url": SIGNED, "key": API_KEY}})
        logging.getLogger("asyncio").error("Task exception was never retrieved: %s", SIGNED)
        logging.getLogger("some.library").warning("oops %s", SIGNED)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(f"unclosed response for {SIGNED}", ResourceWarning, stacklevel=1)
        try:
            raise RuntimeError(f"PUT {SIGNED} with key {API_KEY}")
        except RuntimeError:
            logging.getLogger("slng_bulk").exception("crashed")
            sys.excepthook(*sys.exc_info())
    finally:
        logging.captureWarnings(False)
        for n, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(n)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
    text = stream.getvalue()
    assert text.count("X-Amz-Signature=REDACTED") >= 8, text  # every line above was written
    assert "ab" * 32 not in text and "sandbox%2F2026" not in text and API_KEY not in text
    if log_format == "json":
        for line in text.strip().splitlines():
            json.loads(line)  # still one JSON object per line


def test_api_key_given_as_a_flag_is_accepted_warned_about_and_not_echoed(tmp_path: Path) -> None:
    result = run_cli("submit", "--api-key", API_KEY, str(tmp_path / "none.csv"), cwd=tmp_path)
    assert "warning: --api-key shows in the process list" in result.stderr
    assert API_KEY not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "bad_key", ["sk-two words", "sk-line\nbreak", "sk-tab\there", "sk-nul\x01x", "sk-ünïcode"]
)
def test_a_malformed_key_is_refused_without_being_echoed(
    bad_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key with a newline would otherwise be a header-injection attempt or an aiohttp crash."""
    monkeypatch.setenv("SLNG_API_KEY", bad_key)
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_settings(environment=True)
    assert "api_key" in str(caught.value) and bad_key not in str(caught.value)


def test_api_key_file_edge_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.errors import ConfigError

    monkeypatch.delenv("SLNG_API_KEY", raising=False)
    key_file = tmp_path / "key"
    key_file.write_text(f"\ufeff\n  {API_KEY}  \nsecond line\n")
    assert load_settings(environment=True, api_key_file=key_file).api_key.get_secret_value() == API_KEY  # type: ignore[union-attr]
    for target, phrase in [
        (tmp_path / "nope", "does not exist"),
        (tmp_path, "not a regular file"),
        (Path("/dev/zero"), "not a regular file"),
    ]:
        with pytest.raises(ConfigError, match=phrase):
            load_settings(environment=True, api_key_file=target)
    (tmp_path / "blank").write_text("\n \n")
    with pytest.raises(ConfigError, match="empty"):
        load_settings(environment=True, api_key_file=tmp_path / "blank")


# --- files we write -----------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
def test_ledger_reports_and_summary_are_private_even_under_umask_000(
    sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    make_tree(tmp_path / "in", 2)
    (tmp_path / "m.csv").write_text(f"path\n{tmp_path / 'in' / 'd0' / 'f00000.wav'}\nmissing.wav\n")
    ledger = tmp_path / "l.db"
    report = tmp_path / "reports" / "r.csv"
    report.parent.mkdir()
    report.write_text("old\n")
    report.chmod(0o644)  # an existing, world-readable file is replaced by a private one
    env = {"SLNG_API_KEY": sandbox_thread.api_key, "SLNG_BULK_API_URL": sandbox_thread.api_url}
    old = os.umask(0)
    try:
        run = run_cli(
            "submit",
            str(tmp_path / "m.csv"),
            "--ledger",
            str(ledger),
            "--summary-json",
            str(tmp_path / "s" / "summary.json"),
            env=env,
        )
        exported = run_cli("report", "--ledger", str(ledger), "-o", str(report), env=env)
    finally:
        os.umask(old)
    assert run.returncode == ExitCode.REJECTED, run.stderr
    assert exported.returncode == 0, exported.stderr
    assert _mode(ledger) == 0o600
    for companion in (Path(f"{ledger}-wal"), Path(f"{ledger}-shm")):
        if companion.exists():
            assert _mode(companion) == 0o600, companion
    assert _mode(tmp_path / "s" / "summary.json") == 0o600
    assert _mode(report) == 0o600 and "missing.wav" in report.read_text()
    assert not list(report.parent.glob(".*.tmp")), "no temporary file left behind"


# --- transport ------------------------------------------------------------------------------------------


def test_cli_refuses_plain_http_to_a_remote_api(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav")
    result = run_cli(
        "submit",
        str(tmp_path / "a.wav"),
        "--api-url",
        "http://example.com",
        "--ledger",
        str(tmp_path / "l.db"),
        env={"SLNG_API_KEY": API_KEY},
        cwd=tmp_path,
    )
    assert result.returncode == ExitCode.CONFIG
    assert "API URL http://example.com is not https" in result.stderr
    assert "--allow-insecure-http" in result.stderr and "Traceback" not in result.stderr


# --- every setting: a flag, an environment variable and a config key -------------------------------------

# field -> (text for the environment / TOML string, the value the model then holds)
SAMPLES: dict[str, tuple[str, Any]] = {
    "config": ("", None),  # filled in by the test: must name an existing file
    "api_url": ("https://batch.example.org", "https://batch.example.org"),
    "api_key": ("sk-from-somewhere-1234", "sk-from-somewhere-1234"),
    "api_key_file": ("", None),  # filled in by the test
    "allow_insecure_http": ("true", True),
    "sandbox": ("true", True),
    "ledger": ("postgresql://me@db.internal/slng", "postgresql://me@db.internal/slng"),
    "shard": ("3/5", Shard(3, 5)),
    "lease_timeout": ("45", 45.0),
    "host_name": ("rack-7", "rack-7"),
    "path_map": ("/mnt/a=/data/a,/mnt/b=/data/b", ["/mnt/a=/data/a", "/mnt/b=/data/b"]),
    "concurrency": ("17", 17),
    "chunk_size": ("2MiB", 2 * 1024 * 1024),
    "retries": ("3", 3),
    "retry_max_elapsed": ("12.5", 12.5),
    "stall_timeout": ("7", 7.0),
    "request_timeout": ("9", 9.0),
    "max_create_rps": ("2.5", 2.5),
    "max_presign_rps": ("3.5", 3.5),
    "max_read_rps": ("4.5", 4.5),
    "max_bandwidth": ("50M", 50_000_000),
    "max_failures": ("5", 5),
    "settle": ("30", 30.0),
    "grace": ("4", 4.0),
    "max_duration": ("600", 600.0),
    "force": ("true", True),
    "dry_run": ("true", True),
    "error_on_nothing": ("true", True),
    "wait": ("true", True),
    "wait_timeout": ("60", 60.0),
    "out": ("/tmp/transcripts", Path("/tmp/transcripts")),
    "formats": ("json,srt", ["json", "srt"]),
    "delete_after_fetch": ("true", True),
    "include": ("a/*.wav,b/**", ["a/*.wav", "b/**"]),
    "exclude": ("tmp/**", ["tmp/**"]),
    "follow_symlinks": ("true", True),
    "null": ("true", True),
    "language": ("de", "de"),
    "operating_point": ("enhanced", "enhanced"),
    "diarization": ("speaker", "speaker"),
    "domain": ("finance", "finance"),
    "output_locale": ("en-GB", "en-GB"),
    "enable_entities": ("true", True),
    "model_code": ("slng/other:1", "slng/other:1"),
    "tags": ("x,y", ["x", "y"]),
    "srt_max_line_length": ("42", 42),
    "srt_max_lines": ("3", 3),
    "extra": ('{"summarization": true}', {"summarization": True}),
    "progress": ("lines", "lines"),
    "progress_interval": ("2.5", 2.5),
    "log_format": ("json", "json"),
    "log_level": ("debug", "debug"),
    "event_loop": ("asyncio", "asyncio"),
    "summary_json": ("/tmp/summary.json", Path("/tmp/summary.json")),
    "max_outage": ("90", 90.0),
    "s3_endpoint": ("http://127.0.0.1:4566", "http://127.0.0.1:4566"),
    "s3_region": ("eu-west-1", "eu-west-1"),
    "gcs_endpoint": ("http://127.0.0.1:4443", "http://127.0.0.1:4443"),
    "azure_endpoint": ("http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1"),
    "cloud_allow_http": ("true", True),
    "sign_expiry": ("7200", 7200.0),
    "metrics_addr": ("127.0.0.1:9464", "127.0.0.1:9464"),
}


def test_the_sample_table_covers_every_setting() -> None:
    assert set(SAMPLES) == set(Settings.model_fields), "add the new setting to SAMPLES"


@pytest.fixture(scope="module")
def submit_help() -> str:
    result = run_cli("submit", "--help")
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())


@pytest.fixture(scope="module")
def work_help() -> str:
    result = run_cli("work", "--help")
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())


def _sample(name: str, tmp_path: Path) -> tuple[str, Any]:
    if name == "config":
        path = tmp_path / "c.toml"
        path.write_text("")
        return str(path), path
    if name == "api_key_file":
        path = tmp_path / "key"
        path.write_text("sk-from-a-file-5678\n")
        return str(path), path
    return SAMPLES[name]


def _held(settings: Settings, name: str) -> Any:
    value = getattr(settings, name)
    return value.get_secret_value() if name == "api_key" and value is not None else value


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("SLNG_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no ./slng-bulk.toml from the developer's checkout
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_a_submit_flag_and_an_environment_variable(
    name: str,
    submit_help: str,
    work_help: str,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    flag = "--" + name.replace("_", "-")
    env_name = f"{ENV_PREFIX}{name.upper()}"
    # The shared ledger's worker settings do nothing for submit: `work` offers them.
    command, text_of_help = ("work", work_help) if name in SHARED_LEDGER else ("submit", submit_help)
    assert re.search(rf"(^|\s){re.escape(flag)}[\s/=,]", text_of_help), (
        f"{flag} missing from {command} --help"
    )
    assert f"[env: {env_name}]" in text_of_help

    text, expected = _sample(name, tmp_path)
    assert _held(load_settings(environment=True), name) != expected, "the sample must differ from the default"
    monkeypatch.setenv(env_name, text)
    assert _held(load_settings(environment=True), name) == expected


@pytest.mark.parametrize("name", sorted(set(Settings.model_fields) - {"config"}))
def test_every_setting_is_a_config_file_key_below_environment_and_flag(
    name: str, clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text, expected = _sample(name, tmp_path)
    config = tmp_path / "c.toml"
    config.write_text(f"{name} = {json.dumps(text)}\n")  # a TOML string: sizes, numbers, bools parse from it
    assert _held(load_settings(environment=True, config=config), name) == expected

    default = Settings.model_fields[name].get_default(call_default_factory=True)
    if default is None or name == "api_key_file":
        return  # nothing else to give: the precedence of these is covered in test_settings.py
    # A flag (already parsed by click) beats the file ...
    assert _held(load_settings(environment=True, config=config, **{name: default}), name) == default
    # ... and so does the environment, when it can spell the default.
    if isinstance(default, bool | int | float | str | Path) and not isinstance(default, list):
        monkeypatch.setenv(
            f"{ENV_PREFIX}{name.upper()}", str(default).lower() if isinstance(default, bool) else str(default)
        )
        assert _held(load_settings(environment=True, config=config), name) == default
