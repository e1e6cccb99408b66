"""Run a real LocalStack S3 server (no Docker) for the tests that compare against it.

LocalStack needs Python 3.13 in its own virtual environment (`.ci/install-localstack.sh` makes one).
Its python is looked for in this order:

1. `$SLNG_LOCALSTACK_PYTHON`;
2. `~/.cache/slng-bulk/localstack-venv/bin/python` (the install script's default);
3. `/tmp/lsvenv/bin/python` (a hand-made venv on a developer machine).

With none found, the `localstack_s3` fixture skips its tests, unless `SLNG_REQUIRE_LOCALSTACK=1`
(CI sets it), where it fails them instead: CI must not turn green by silently testing nothing.

The server is started with `S3_SKIP_SIGNATURE_VALIDATION=0`, so it verifies SigV4 presigned URLs,
their expiry, signed headers and Content-MD5. It accepts any access key with the secret `test`. It
keeps objects under `/tmp/localstack-s3-storage/<bucket>` whatever TMPDIR says, so bucket names must
be unique per session (`unique_bucket_name`); the directories of the buckets it held are removed when
it stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

ENV_PYTHON: Final = "SLNG_LOCALSTACK_PYTHON"
ENV_REQUIRE: Final = "SLNG_REQUIRE_LOCALSTACK"
DEFAULT_VENV_PYTHON: Final = Path.home() / ".cache" / "slng-bulk" / "localstack-venv" / "bin" / "python"
FALLBACK_PYTHON: Final = Path("/tmp/lsvenv/bin/python")
# Hard-coded in LocalStack's S3 provider (DEFAULT_S3_TMP_DIR), not configurable.
STORAGE_ROOT: Final = Path("/tmp/localstack-s3-storage")

ACCESS_KEY: Final = "AKIASLNGBULKTESTS000"
SECRET_KEY: Final = "test"
REGION: Final = "us-east-1"

READY_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 15.0
START_ATTEMPTS: Final = 3

INSTALL_HINT: Final = "run .ci/install-localstack.sh (or set SLNG_LOCALSTACK_PYTHON)"


class LocalStackError(RuntimeError):
    """LocalStack could not be started or did not become ready."""


@dataclass(frozen=True)
class LocalStackS3:
    """A running LocalStack S3 endpoint and the credentials it accepts."""

    endpoint: str
    pid: int
    log_path: Path
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self) -> Any:
        """A botocore S3 client (SigV4, path-style) for this endpoint."""
        return make_s3_client(self.endpoint, self.access_key, self.secret_key, self.region)

    def create_bucket(self, prefix: str = "slng-test") -> str:
        """Create a bucket with a name unique to this session and return its name."""
        name = unique_bucket_name(prefix)
        self.client().create_bucket(Bucket=name)
        return name


def unique_bucket_name(prefix: str = "slng-test") -> str:
    """A valid S3 bucket name (lowercase, at most 63 characters) that no other session uses."""
    name = f"{prefix.lower()}-{uuid.uuid4().hex[:16]}"
    if len(name) > 63:
        raise ValueError(f"bucket prefix too long: {prefix!r}")
    return name


def make_s3_client(endpoint: str, access_key: str, secret_key: str, region: str) -> Any:
    """A botocore S3 client for a local endpoint: SigV4 (`s3v4`), path-style addressing."""
    import botocore.session
    from botocore.config import Config

    session = botocore.session.get_session()
    return session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        # The endpoint is plain http; never let the machine's AWS_CA_BUNDLE get involved.
        verify=False,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_localstack_python() -> tuple[Path | None, str]:
    """The python of a LocalStack venv, or None and the reason none was found."""
    explicit = os.environ.get(ENV_PYTHON, "").strip()
    if explicit:
        path = Path(explicit)
        if _is_executable(path):
            return path, f"${ENV_PYTHON}"
        return None, f"${ENV_PYTHON}={explicit} is not an executable file"
    for candidate in (DEFAULT_VENV_PYTHON, FALLBACK_PYTHON):
        if _is_executable(candidate):
            return candidate, str(candidate)
    return None, (
        f"no LocalStack python: ${ENV_PYTHON} unset, and neither {DEFAULT_VENV_PYTHON} "
        f"nor {FALLBACK_PYTHON} exists"
    )


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _localstack_env(port: int, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The machine's CA bundle is for outbound https; LocalStack trips over it and needs none.
    env.pop("AWS_CA_BUNDLE", None)
    # Never let a Docker-based LocalStack config or a debugger setting leak in from the caller.
    for name in ("LOCALSTACK_HOST", "GATEWAY_LISTEN", "PERSISTENCE", "DEBUG", "LS_LOG"):
        env.pop(name, None)
    env.update(
        {
            "S3_SKIP_SIGNATURE_VALIDATION": "0",
            "SERVICES": "s3",
            "EAGER_SERVICE_LOADING": "1",
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "DNS_ADDRESS": "0",
            # No analytics and no certificate download: tests must not reach the internet.
            "DISABLE_EVENTS": "1",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "TMPDIR": str(workdir / "tmp"),
            "LOCALSTACK_VOLUME_DIR": str(workdir / "volume"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _health(endpoint: str) -> dict[str, Any] | None:
    # No proxy: the server is on loopback and a proxy from the environment must not be asked.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{endpoint}/_localstack/health", timeout=2) as resp:
            data = json.loads(resp.read().decode("utf-8"))
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _s3_ready(endpoint: str) -> bool:
    health = _health(endpoint)
    if health is None:
        return False
    services = health.get("services")
    return isinstance(services, dict) and services.get("s3") in ("available", "running")


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server we started, by its pid: SIGTERM, then SIGKILL after a timeout."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


def _bucket_names(server: LocalStackS3) -> list[str]:
    """Buckets this (fresh, in-memory) LocalStack holds: all of them were created in this session."""
    try:
        response = server.client().list_buckets()
    except Exception:  # best effort: only used to clean up
        return []
    return [str(b["Name"]) for b in response.get("Buckets", []) if b.get("Name")]


def _start(python: Path, workdir: Path, attempt: int) -> tuple[subprocess.Popen[bytes], LocalStackS3]:
    port = _free_loopback_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = workdir / f"localstack-{attempt}.log"
    (workdir / "tmp").mkdir(exist_ok=True)
    (workdir / "volume").mkdir(exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(python), "-m", "localstack.runtime.main"],
            cwd=workdir,
            env=_localstack_env(port, workdir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group: a Ctrl-C in the terminal reaches pytest, which then stops it cleanly.
            start_new_session=True,
        )
    return proc, LocalStackS3(endpoint=endpoint, pid=proc.pid, log_path=log_path)


@contextlib.contextmanager
def run_localstack(python: Path, *, ready_timeout: float = READY_TIMEOUT_S) -> Iterator[LocalStackS3]:
    """Start LocalStack S3 on a free loopback port, yield it once S3 is ready, then stop it."""
    workdir = Path(tempfile.mkdtemp(prefix="slng-localstack-"))
    proc: subprocess.Popen[bytes] | None = None
    server: LocalStackS3 | None = None
    buckets: list[str] = []
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            proc, server = _start(python, workdir, attempt)
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None or _s3_ready(server.endpoint):
                    break
                time.sleep(0.1)
            if proc.poll() is None and _s3_ready(server.endpoint):
                break
            exited = proc.poll() is not None
            stop_process(proc)
            if not exited or attempt == START_ATTEMPTS:
                # Exited early several times (the port may have been taken under us), or hung.
                what = "exited early" if exited else f"was not ready within {ready_timeout:.0f} s"
                raise LocalStackError(
                    f"LocalStack ({python}) {what} on {server.endpoint}; log tail:\n"
                    f"{_log_tail(server.log_path)}"
                )
        assert server is not None
        try:
            yield server
        finally:
            buckets = _bucket_names(server)
    finally:
        if proc is not None:
            stop_process(proc)
        for name in buckets:
            # Only names this instance held, each unique to its session: never another session's data.
            if name and "/" not in name and name not in (".", ".."):
                shutil.rmtree(STORAGE_ROOT / name, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def localstack_s3() -> Iterator[LocalStackS3]:
    """A LocalStack S3 server for the whole test session (skipped, or failed in CI, when absent)."""
    python, reason = find_localstack_python()
    if python is None:
        message = f"LocalStack unavailable ({reason}); {INSTALL_HINT}"
        if os.environ.get(ENV_REQUIRE, "").strip() == "1":
            pytest.fail(f"{ENV_REQUIRE}=1 but {message}", pytrace=False)
        pytest.skip(message)
    with run_localstack(python) as server:
        yield server
