"""Everything a command needs to talk to the API and the ledger, opened and closed in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import filelock

from pipeline.api.client import ApiTimeouts, SlngClient
from pipeline.config.settings import Settings
from pipeline.errors import ConfigError, LockHeldError
from pipeline.ledger import Ledger, acquire_run_lock, open_ledger, sqlite_path, try_run_lock
from pipeline.logs import log
from pipeline.redact import secret_scope
from pipeline.transport.outage import OutageGates, OutagePolicy
from pipeline.transport.rates import RateControl
from pipeline.transport.retry import RetryPolicy


@dataclass(frozen=True)
class Connection:
    settings: Settings
    ledger: Ledger
    client: SlngClient
    session: aiohttp.ClientSession
    rates: RateControl
    policy: RetryPolicy
    beside_a_run: bool = False  # another run holds the ledger's lock; this command reads beside it


def sandbox_data_dir(ledger: Path) -> Path:
    """Where `--sandbox` keeps its jobs and objects: beside the ledger (`demo.db.sandbox/`), so the
    follow commands after a `submit --sandbox` see the same jobs, each ledger has its own sandbox
    world, and the ledger's lock also guards it. Owner-only: it holds copies of the uploaded audio."""
    path = ledger.with_name(ledger.name + ".sandbox")
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)
    except OSError as exc:
        raise ConfigError(f"cannot use {path} for the sandbox's state: {exc.strerror or exc}") from None
    return path


@asynccontextmanager
async def api_target(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """The API URL and key to use: the in-process sandbox with --sandbox, else the settings'."""
    if settings.sandbox:
        from pipeline.sandbox import Sandbox, SandboxConfig

        ledger_file = sqlite_path(settings.ledger)  # a shared ledger's sandbox keeps nothing on disk
        data_dir = sandbox_data_dir(ledger_file) if ledger_file is not None else None
        config = SandboxConfig(job_step_seconds=0.5, data_dir=data_dir)
        async with Sandbox(config).run() as sandbox:
            log.info("sandbox running: API %s, S3 %s", sandbox.api_url, sandbox.s3_url)
            yield sandbox.api_url, sandbox.api_key
        return
    if settings.api_key is None:
        raise ConfigError("no API key: set SLNG_API_KEY, use --api-key-file, or try --sandbox")
    yield settings.api_url, settings.api_key.get_secret_value()


def _run_lock(ledger_path: Path, settings: Settings, beside_a_run: bool) -> filelock.BaseFileLock | None:
    """The ledger's lock; with `beside_a_run`, None when a run holds it (the command goes on
    beside it), except with --sandbox, whose state beside the ledger the lock also guards."""
    if not beside_a_run:
        return acquire_run_lock(ledger_path)
    lock = try_run_lock(ledger_path)
    if lock is None and settings.sandbox:
        raise LockHeldError(
            f"another slng-bulk run is using the ledger {ledger_path} and its sandbox; "
            "`slng-bulk report` reads the ledger now, or wait for the run to finish"
        )
    return lock


@asynccontextmanager
async def connect(
    settings: Settings, *, session: aiohttp.ClientSession | None = None, beside_a_run: bool = False
) -> AsyncIterator[Connection]:
    """Take the ledger's lock, open the ledger, one pooled HTTP session and the API client.

    `session`: the caller's own aiohttp session (a web service's, with its tracing and proxies),
    used as it is and left open; otherwise one is made for the command, sized to --concurrency.
    `beside_a_run`: a command that only follows jobs (status, fetch) goes on while another run
    holds the lock: it writes only the server's view of created files, each guarded by the job_id
    it read, in short transactions SQLite's WAL serialises with the run's (Connection.beside_a_run).
    """
    ledger_path = sqlite_path(settings.ledger)
    given_key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    # One run per SQLite ledger; a shared (PostgreSQL) ledger is made for many at once.
    lock = _run_lock(ledger_path, settings, beside_a_run) if ledger_path is not None else None
    beside = ledger_path is not None and lock is None
    try:
        async with AsyncExitStack() as stack:
            stack.enter_context(secret_scope(given_key))
            api_url, api_key = await stack.enter_async_context(api_target(settings))
            stack.enter_context(secret_scope(api_key))
            ledger = await stack.enter_async_context(
                open_ledger(settings.ledger, host=settings.host_name, max_outage=settings.max_outage)
            )
            if session is None:
                connector = aiohttp.TCPConnector(limit=settings.concurrency * 2 + 8, limit_per_host=0)
                session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
            # An outage of the API or of S3 is waited out, not failed through (up to --max-outage).
            OutageGates.attach(session, OutagePolicy(max_outage=settings.max_outage))
            rates = RateControl.from_limits(
                settings.max_create_rps, settings.max_presign_rps, settings.max_read_rps
            )
            timeouts = ApiTimeouts(read=settings.request_timeout, total=settings.request_timeout * 2)
            client = SlngClient(session, api_url, api_key, rates, timeouts, settings.allow_insecure_http)
            policy = RetryPolicy(retries=settings.retries, max_elapsed=settings.retry_max_elapsed)
            yield Connection(settings, ledger, client, session, rates, policy, beside)
    finally:
        if lock is not None:
            lock.release()
