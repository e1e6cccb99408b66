"""`ledger_target`: one test, run once on each backend (a SQLite file, a PostgreSQL database).

For tests that drive the command line or the pipeline by a ledger's target text, so the same test
code checks that both backends keep the same promise. (The contract tests in tests/ledger have their
own fixtures, which hand out ledger objects.)
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """`--ledger` for this run of the test: `l.db` in its folder, or a database of its own
    (skipped without a PostgreSQL server, failed in CI)."""
    if request.param == "sqlite":
        return str(tmp_path / "l.db")
    url: str = request.getfixturevalue("postgres_url")
    return url
