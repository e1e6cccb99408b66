"""A real PostgreSQL server for the tests of the shared ledger, and a fresh database per test.

The server is, in this order:

1. the one `$SLNG_POSTGRES_URL` names (a role that may CREATE DATABASE; its own database is only
   used to create and drop the test databases);
2. a throwaway cluster made with `initdb` and started with `pg_ctl` from the newest
   `/usr/lib/postgresql/*/bin` (Debian's layout) or from `PATH`, in a temporary directory, listening
   on 127.0.0.1 on a free port (and a unix socket in that directory), stopped at the end of the session.

initdb refuses to run as root, so as root the cluster belongs to the `postgres` user that Debian's
package creates (or `nobody`), through `runuser`. Durability is off (fsync, synchronous commit): the
cluster lives for one session and speed is what the tests need from it.

With neither available, the tests that need PostgreSQL skip, saying why, unless
`SLNG_REQUIRE_POSTGRES=1` (CI sets it), where they fail: CI must not turn green by testing nothing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn
from urllib.parse import quote, urlsplit

import pytest

ENV_URL: Final = "SLNG_POSTGRES_URL"
ENV_REQUIRE: Final = "SLNG_REQUIRE_POSTGRES"
DEBIAN_BIN_GLOB: Final = "/usr/lib/postgresql/*/bin"
SUPERUSER: Final = "slng"
RUN_AS_CANDIDATES: Final = ("postgres", "nobody")
START_TIMEOUT_S: Final = 60
STOP_TIMEOUT_S: Final = 30
START_ATTEMPTS: Final = 3
INSTALL_HINT: Final = f"install PostgreSQL (apt-get install postgresql) or set {ENV_URL}"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be found or started."""


@dataclass(frozen=True)
class PostgresServer:
    """A reachable server: `admin_url` may create and drop databases. `pid` is set when we started it."""

    admin_url: str
    pid: int | None = None

    def url_for(self, database: str) -> str:
        """The admin URL pointed at another database on the same server."""
        return urlsplit(self.admin_url)._replace(path="/" + quote(database)).geturl()


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: the newest Debian version, else the one on PATH."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = sorted(Path("/").glob(DEBIAN_BIN_GLOB.lstrip("/")), key=version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _cluster_user() -> str | None:
    """Who owns the cluster: None (ourselves) unless we are root, which initdb refuses."""
    if os.geteuid() != 0:
        return None
    for name in RUN_AS_CANDIDATES:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresUnavailable(f"running as root and none of the users {RUN_AS_CANDIDATES} exists")


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Cluster:
    """initdb, pg_ctl start and stop, as the cluster's user, in one temporary directory."""

    def __init__(self, bindir: Path, user: str | None) -> None:
        self.bindir = bindir
        self.user = user
        # As root, under /tmp: the cluster's user must be able to reach the directory.
        self.workdir = Path(tempfile.mkdtemp(prefix="slng-pg-", dir="/tmp" if user else None))
        self.data = self.workdir / "data"
        self.log = self.workdir / "server.log"
        self.password = secrets.token_urlsafe(18)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return subprocess.run(
            [*prefix, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
        )

    def init(self) -> None:
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        pwfile.chmod(0o600)
        done = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",  # the socket lives in our private directory
            "--auth-host=scram-sha-256",  # over TCP only with the session's password
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            timeout=START_TIMEOUT_S,
        )
        pwfile.unlink()
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {(done.stderr or done.stdout).strip()[-800:]}")

    def start(self, port: int | None = None) -> int:
        """Start on a free port (or `port`, to come back where it was); return it. A free port
        taken under us is retried on another."""
        for _attempt in range(START_ATTEMPTS):
            port = port or _free_loopback_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-p {port}",
                    f"-k {shlex.quote(str(self.workdir))}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=300",
                ]
            )
            done = self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
                timeout=START_TIMEOUT_S + 10,
            )
            if done.returncode == 0:
                return port
            port = None
        raise PostgresUnavailable(f"pg_ctl start failed; server log tail:\n{_log_tail(self.log)}")

    def stop(self) -> None:
        """pg_ctl stop (fast), then the postmaster's pid by SIGKILL if it is still there."""
        pid = _postmaster_pid(self.data)
        if pid is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                str(STOP_TIMEOUT_S),
                "stop",
                timeout=STOP_TIMEOUT_S + 10,
            )
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass(frozen=True)
class RestartableServer:
    """A throwaway cluster of its own, which a test may restart (as an operator or a failover does)."""

    server: PostgresServer
    cluster: _Cluster
    port: int

    def restart(self, down_seconds: float) -> None:
        """Stop the server (fast: every connection is dropped), stay down, start it on the same port."""
        self.cluster.stop()
        time.sleep(down_seconds)  # the outage itself: what the clients must ride through
        self.cluster.start(self.port)


@contextlib.contextmanager
def run_restartable_cluster(bindir: Path) -> Iterator[RestartableServer]:
    cluster = _Cluster(bindir, _cluster_user())
    try:
        cluster.init()
        port = cluster.start()
        url = f"postgresql://{SUPERUSER}:{quote(cluster.password)}@127.0.0.1:{port}/postgres"
        yield RestartableServer(
            PostgresServer(admin_url=url, pid=_postmaster_pid(cluster.data)), cluster, port
        )
    finally:
        cluster.stop()
        cluster.remove()


@pytest.fixture(scope="module")
def restartable_postgres() -> Iterator[RestartableServer]:
    """A cluster of its own for tests that restart it (never the session's shared server)."""
    bindir = find_bindir()
    if bindir is None:
        _unavailable(
            f"no initdb/pg_ctl in {DEBIAN_BIN_GLOB} or on PATH (a restart needs a cluster of our own)"
        )
    with contextlib.ExitStack() as stack:
        try:
            restartable = stack.enter_context(run_restartable_cluster(bindir))
        except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
            _unavailable(f"could not start a cluster from {bindir}: {exc}")
        _check_reachable(restartable.server)
        yield restartable


@contextlib.contextmanager
def run_cluster(bindir: Path) -> Iterator[PostgresServer]:
    """A throwaway cluster from `bindir`, for as long as the block runs."""
    cluster = _Cluster(bindir, _cluster_user())
    try:
        cluster.init()
        port = cluster.start()
        pid = _postmaster_pid(cluster.data)
        url = f"postgresql://{SUPERUSER}:{quote(cluster.password)}@127.0.0.1:{port}/postgres"
        yield PostgresServer(admin_url=url, pid=pid)
    finally:
        cluster.stop()
        cluster.remove()


def _unavailable(reason: str) -> NoReturn:
    message = f"PostgreSQL unavailable ({reason}); {INSTALL_HINT}"
    if os.environ.get(ENV_REQUIRE, "").strip() == "1":
        pytest.fail(f"{ENV_REQUIRE}=1 but {message}", pytrace=False)
    pytest.skip(message)


def _check_reachable(server: PostgresServer) -> None:
    import psycopg

    try:
        with psycopg.connect(server.admin_url, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable(f"cannot connect to the server: {str(exc).strip().splitlines()[0]}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (skipped, or failed in CI, when none is reachable)."""
    given = os.environ.get(ENV_URL, "").strip()
    if given:
        server = PostgresServer(admin_url=given)
        _check_reachable(server)
        yield server
        return
    bindir = find_bindir()
    if bindir is None:
        _unavailable(f"{ENV_URL} unset and no initdb/pg_ctl in {DEBIAN_BIN_GLOB} or on PATH")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(run_cluster(bindir))
        except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
            _unavailable(f"could not start a cluster from {bindir}: {exc}")
        _check_reachable(server)
        yield server


def create_database(server: PostgresServer) -> str:
    """A new, empty database (copied from template0, UTF-8, C collation); its name."""
    import psycopg
    from psycopg import sql

    name = f"slng_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
            ).format(sql.Identifier(name))
        )
    return name


def drop_database(server: PostgresServer, name: str) -> None:
    """Drop a test database, closing whatever connections a killed worker left behind."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a database of its own for one test, dropped afterwards."""
    name = create_database(postgres_server)
    try:
        yield postgres_server.url_for(name)
    finally:
        drop_database(postgres_server, name)
