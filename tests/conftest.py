"""Shared fixtures: a fresh sandbox per test, in-process (async) or in its own thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from pipeline.sandbox import Sandbox, SandboxConfig

# The PostgreSQL fixtures (postgres_server, postgres_url) and `ledger_target` (each backend in turn)
# for every test folder.
pytest_plugins = ["tests.support.postgres", "tests.support.ledgers"]

FAST_STEP_SECONDS = 0.05


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sandbox(anyio_backend: str) -> AsyncIterator[Sandbox]:
    """A sandbox in the test's event loop; jobs finish ~0.15 s after creation."""
    async with Sandbox(SandboxConfig(job_step_seconds=FAST_STEP_SECONDS)).run() as sb:
        yield sb


@pytest.fixture
def sandbox_thread() -> Iterator[Sandbox]:
    """A sandbox on its own thread and loop, for sync code and subprocess-driven tests."""
    with Sandbox(SandboxConfig(job_step_seconds=FAST_STEP_SECONDS)).run_in_thread() as sb:
        yield sb
