"""`status`, `fetch` and `report` work while a real `submit` in another process holds the ledger:
the run reads paths from stdin and so is certainly still going while they run; afterwards every
file has exactly one job and the run ends as usual."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.ledger import acquire_run_lock
from pipeline.sandbox import Sandbox
from tests.support.audio import make_tree
from tests.support.env import isolate
from tests.support.runs import assert_exactly_once, cli_env, run_cli, start_cli


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def created(ledger: Path) -> int:
    try:
        with sqlite3.connect(f"{ledger.resolve().as_uri()}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM files WHERE state = 'created'").fetchone()[0])
    except sqlite3.OperationalError:  # not made yet
        return 0


def wait_for_created(ledger: Path, count: int, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while created(ledger) < count:
        assert time.monotonic() < deadline, f"the run did not create {count} jobs"
        time.sleep(0.05)


def test_status_fetch_and_report_while_a_submit_holds_the_ledger(
    sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "audio", 6)
    ledger, out = tmp_path / "l.db", tmp_path / "out"
    env = cli_env(sandbox_thread, ledger)
    run = start_cli(["submit", "-"], env, tmp_path, pipe_stdin=True)
    assert run.stdin is not None
    run.stdin.write("".join(f"{f}\n" for f in files[:4]))
    run.stdin.flush()
    wait_for_created(ledger, 4)

    status = run_cli("status", "--format", "json", env=env)
    assert status.returncode == ExitCode.OK, status.stderr
    document = json.loads(status.stdout)
    assert document["beside_a_run"] is True and sum(document["by_status"].values()) == 4
    assert "a run is going on this ledger" in status.stderr
    fetched = run_cli("fetch", "--out", str(out), "--formats", "txt", env=env)
    assert fetched.returncode == ExitCode.OK, fetched.stderr
    report = run_cli("report", "--format", "jsonl", env=env)
    assert report.returncode == ExitCode.OK, report.stderr
    rows = [json.loads(line) for line in report.stdout.splitlines()]
    assert sum(1 for row in rows if row["transcripts"]) >= 1
    assert run.poll() is None  # all of it beside the run

    run.stdin.write("".join(f"{f}\n" for f in files[4:]))
    run.stdin.close()
    assert run.wait(timeout=60) == ExitCode.OK, run.stderr.read() if run.stderr else ""
    assert_exactly_once(sandbox_thread, files)
    assert created(ledger) == 6


def test_status_with_the_sandbox_beside_a_run_says_what_to_do(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    ledger.touch()
    lock = acquire_run_lock(ledger)
    try:
        done = run_cli("status", "--sandbox", "--ledger", str(ledger))
    finally:
        lock.release()
    assert done.returncode == ExitCode.LOCKED, done.stderr
    assert "`slng-bulk report` reads the ledger now" in done.stderr
