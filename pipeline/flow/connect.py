"""Everything a command needs to talk to the API and the ledger, opened and closed in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp

from pipeline.api.client import ApiTimeouts, SlngClient
from pipeline.config.settings import Settings
from pipeline.errors import ConfigError
from pipeline.flow.rates import RateControl
from pipeline.flow.retry import RetryPolicy
from pipeline.ledger import Ledger, acquire_run_lock, open_ledger, sqlite_path
from pipeline.observe.logs import log
from pipeline.observe.redact import register_secret


@dataclass(frozen=True)
class Connection:
    settings: Settings
    ledger: Ledger
    client: SlngClient
    session: aiohttp.ClientSession
    rates: RateControl
    policy: RetryPolicy


@asynccontextmanager
async def api_target(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """The API URL and key to use: the in-process sandbox with --sandbox, else the settings'."""
    if settings.sandbox:
        from pipeline.sandbox import Sandbox, SandboxConfig

        async with Sandbox(SandboxConfig(job_step_seconds=0.5)).run() as sandbox:
            log.info("sandbox running: API %s, S3 %s", sandbox.api_url, sandbox.s3_url)
            yield sandbox.api_url, sandbox.api_key
        return
    if settings.api_key is None:
        raise ConfigError("no API key: set SLNG_API_KEY, use --api-key-file, or try --sandbox")
    yield settings.api_url, settings.api_key.get_secret_value()


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[Connection]:
    """Take the ledger's lock, open the ledger, one pooled HTTP session and the API client."""
    if settings.api_key is not None:
        register_secret(settings.api_key.get_secret_value())
    ledger_path = sqlite_path(settings.ledger)
    # One run per SQLite ledger; a shared (PostgreSQL) ledger is made for many at once.
    lock = acquire_run_lock(ledger_path) if ledger_path is not None else None
    try:
        async with AsyncExitStack() as stack:
            api_url, api_key = await stack.enter_async_context(api_target(settings))
            register_secret(api_key)
            ledger = await stack.enter_async_context(open_ledger(settings.ledger, host=settings.host_name))
            connector = aiohttp.TCPConnector(limit=settings.concurrency * 2 + 8, limit_per_host=0)
            session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
            rates = RateControl.from_limits(
                settings.max_create_rps, settings.max_presign_rps, settings.max_read_rps
            )
            timeouts = ApiTimeouts(read=settings.request_timeout, total=settings.request_timeout * 2)
            client = SlngClient(session, api_url, api_key, rates, timeouts, settings.allow_insecure_http)
            policy = RetryPolicy(retries=settings.retries, max_elapsed=settings.retry_max_elapsed)
            yield Connection(settings, ledger, client, session, rates, policy)
    finally:
        if lock is not None:
            lock.release()
