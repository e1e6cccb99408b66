"""Ledger fixtures: every contract test runs against each backend listed in LEDGER_BACKENDS.

A backend is a function from the test's fixture request to a factory of ledger handles: each call gives
a fresh, unopened handle on the same ledger, so a test can close it and open it again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pipeline.api.models import TranscriptionConfig
from pipeline.ledger import Ledger, open_ledger
from pipeline.sources.rows import FileSpec, JobSettings

LedgerFactory = Callable[[], Ledger]


def _sqlite(request: pytest.FixtureRequest) -> LedgerFactory:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    target = f"sqlite:///{tmp_path / 'l.db'}"
    return lambda: open_ledger(target)


def _postgresql(request: pytest.FixtureRequest) -> LedgerFactory:
    """A database of its own on the session's PostgreSQL server (skipped without one, failed in CI)."""
    target: str = request.getfixturevalue("postgres_url")
    return lambda: open_ledger(target)


LEDGER_BACKENDS: dict[str, Callable[[pytest.FixtureRequest], LedgerFactory]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}


@pytest.fixture(params=sorted(LEDGER_BACKENDS))
def ledger_factory(request: pytest.FixtureRequest) -> LedgerFactory:
    return LEDGER_BACKENDS[request.param](request)


@pytest.fixture
async def ledger(ledger_factory: LedgerFactory, anyio_backend: str) -> AsyncIterator[Ledger]:
    """An open ledger, closed (and its queued writes committed) after the test."""
    async with ledger_factory() as opened:
        yield opened


def make_spec(folder: Path, name: str = "a.wav", language: str = "en") -> FileSpec:
    """A row for a real small file in `folder` (created on first use)."""
    path = folder / name
    if not path.exists():
        path.write_bytes(b"RIFF0000WAVEdata")
    st = path.stat()
    settings = JobSettings(transcription_config=TranscriptionConfig(language=language))
    return FileSpec(
        source="m.csv",
        line=2,
        path=path,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        job_id=None,
        settings=settings,
        relative_path=name,
    )
