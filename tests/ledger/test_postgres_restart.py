"""A shared ledger rides through a database restart: `work` and `submit` on a PostgreSQL ledger
whose server is really stopped (every connection dropped) and started again mid-run finish with
every file created once, none twice, and nothing refused twice by the API.

The cluster is one of the tests' own (restartable_postgres), never the session's shared server.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.ledger import FileState
from pipeline.ledger.postgres import PostgresLedger
from pipeline.sandbox import FaultPlan, Sandbox
from tests.support.audio import make_tree
from tests.support.postgres import RestartableServer, create_database, drop_database
from tests.support.runs import assert_exactly_once, cli_env, run_cli, start_cli

FILES = 60
DOWN_SECONDS = 3.0


@pytest.fixture
def ledger_url(restartable_postgres: RestartableServer) -> Iterator[str]:
    name = create_database(restartable_postgres.server)
    yield restartable_postgres.server.url_for(name)
    drop_database(restartable_postgres.server, name)


def env_for(sb: Sandbox, ledger_url: str) -> dict[str, str]:
    return cli_env(sb, ledger_url) | {"SLNG_BULK_CONCURRENCY": "4"}


def slow_creates(sb: Sandbox) -> None:
    """Creates take a while, so the run is still going when the database goes down."""
    sb.set_faults(FaultPlan.model_validate({"operations": {"create": {"latency": {"fixed_ms": 60}}}}))


def restart_after_creates(
    sb: Sandbox, proc: subprocess.Popen[str], pg: RestartableServer, creates: int
) -> None:
    deadline = time.monotonic() + 60
    while (sb.stats().requests.get("create") or None) is None or sb.stats().requests[
        "create"
    ].total < creates:
        assert proc.poll() is None, f"the run ended before the restart: {proc.communicate()}"
        assert time.monotonic() < deadline, "the run did not get going"
        time.sleep(0.02)
    pg.restart(DOWN_SECONDS)
    assert proc.poll() is None, "the run ended while the database was down"


def assert_each_file_once(sb: Sandbox, ledger_url: str, files: list[Path]) -> None:
    assert PostgresLedger(ledger_url).count_by_state() == {FileState.CREATED.value: len(files)}
    assert_exactly_once(sb, files)
    refused = Counter(a.job_id for a in sb.jobs().attempts if not a.created)
    assert all(count <= 1 for count in refused.values()), refused


def test_work_rides_through_a_database_restart(
    sandbox_thread: Sandbox, restartable_postgres: RestartableServer, ledger_url: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "audio", FILES)
    env = env_for(sandbox_thread, ledger_url)
    enqueued = run_cli("enqueue", str(tmp_path / "audio"), env=env, cwd=tmp_path)
    assert enqueued.returncode == ExitCode.OK, enqueued.stderr
    slow_creates(sandbox_thread)

    worker = start_cli(["work"], env, tmp_path)
    restart_after_creates(sandbox_thread, worker, restartable_postgres, creates=10)
    _out, err = worker.communicate(timeout=180)

    assert worker.returncode == ExitCode.OK, err
    assert "connection lost" in err and "reconnected" in err and "discarding" not in err
    assert_each_file_once(sandbox_thread, ledger_url, files)


def test_submit_on_a_shared_ledger_rides_through_a_database_restart(
    sandbox_thread: Sandbox, restartable_postgres: RestartableServer, ledger_url: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "audio", FILES)
    env = env_for(sandbox_thread, ledger_url)
    slow_creates(sandbox_thread)

    run = start_cli(["submit", str(tmp_path / "audio")], env, tmp_path)
    restart_after_creates(sandbox_thread, run, restartable_postgres, creates=10)
    _out, err = run.communicate(timeout=180)

    assert run.returncode == ExitCode.OK, err
    assert_each_file_once(sandbox_thread, ledger_url, files)
