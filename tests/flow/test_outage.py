"""Outages are paused through, not failed through: the API or S3 not answering at all stops the
pool, which probes until it answers and then goes on; past --max-outage (or at once, when it never
answered) the run ends with exit 11 and nothing failed, and a rerun resumes.

End to end against the sandbox's outage mode (every request to a server answered 503, or its
connection dropped, for a window), switched on mid-run by a listener on the sandbox's loop.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ExitCode, OutageError
from pipeline.ledger import FileState, SqliteLedger
from pipeline.sandbox import FaultPlan, Sandbox
from pipeline.transport.outage import OutagePolicy
from tests.support.audio import make_tree
from tests.support.runs import assert_exactly_once, child_env, cli_env, run_cli, run_submit

pytestmark = pytest.mark.anyio

FAST = {"max_create_rps": 500.0, "max_presign_rps": 500.0, "max_read_rps": 500.0, "concurrency": 4}


@pytest.fixture(autouse=True)
def _isolated_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def outage(servers: list[str], mode: str = "503", seconds: float | None = None) -> FaultPlan:
    return FaultPlan.model_validate({"outage": {"servers": servers, "mode": mode, "seconds": seconds}})


def go_down_on(sb: Sandbox, op: str, nth: int, plan: FaultPlan) -> None:
    """Switch the outage on when the `nth` request of `op` arrives (before its faults are decided)."""

    def arrived(seen_op: str, seen_nth: int) -> None:
        if seen_op == op and seen_nth == nth:
            sb.set_faults(plan)

    sb.listen(on_arrival=arrived)


def assert_budgets_spared(retries: int, ledger: Path) -> None:
    """Only the few requests that failed before the gate opened (a handful, across files) went the
    ordinary way, as retries; once it was open nothing more was counted against any file."""
    assert retries <= 2 * OutagePolicy().threshold
    assert FileState.FAILED.value not in states(ledger)


def states(ledger: Path) -> dict[str, int]:
    return SqliteLedger(ledger).count_by_state()


def test_an_unreachable_api_at_start_ends_at_once_with_one_line_and_nothing_failed(
    sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    make_tree(tmp_path / "audio", 20)
    ledger = tmp_path / "l.db"
    env = {
        "SLNG_API_KEY": "sk-test",
        "SLNG_BULK_LEDGER": str(ledger),
        "SLNG_BULK_PROGRESS": "none",
        "SLNG_BULK_LOG_LEVEL": "warning",  # as from cron: what is worth a look
    }
    down = run_cli(
        "submit", str(tmp_path / "audio"), "--api-url", f"http://127.0.0.1:{closed_port()}", env=env
    )

    assert down.returncode == ExitCode.OUTAGE, down.stderr
    lines = [line for line in down.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, down.stderr
    assert "unreachable from the start" in lines[0] and "nothing failed, a rerun resumes" in lines[0]
    assert FileState.FAILED.value not in states(ledger)

    again = run_cli("submit", str(tmp_path / "audio"), env=cli_env(sandbox_thread, ledger))
    assert again.returncode == ExitCode.OK, again.stderr
    assert states(ledger) == {FileState.CREATED.value: 20}
    assert_exactly_once(sandbox_thread, sorted((tmp_path / "audio").rglob("*.wav")))


@pytest.mark.parametrize(
    ("server", "op", "mode", "injected"),
    [
        ("api", "create", "503", "status_503"),
        ("api", "create", "refuse", "reset"),
        ("s3", "put", "503", "status_503"),
    ],
    ids=["api-503", "api-refuse", "s3-503"],
)
async def test_an_outage_mid_run_is_waited_out_and_nothing_fails(
    sandbox: Sandbox, tmp_path: Path, server: str, op: str, mode: str, injected: str
) -> None:
    files = make_tree(tmp_path / "audio", 30)
    go_down_on(sandbox, op, 8, outage([server], mode, seconds=3.0))

    # Two retries (about 1.5 s of backoff) would not outlive a 3 s outage, one file after another.
    stats = await run_submit(sandbox, [tmp_path / "audio"], tmp_path / "l.db", retries=2, **FAST)

    assert (stats.created, stats.failed) == (30, 0)
    assert_budgets_spared(stats.retries, tmp_path / "l.db")
    assert_exactly_once(sandbox, files)
    assert sandbox.stats().injected.get(injected, 0) >= 1


@pytest.mark.parametrize(
    ("server", "op", "mode", "message"),
    [
        ("api", "presign", "refuse", r"unreachable for \d+ s \(--max-outage\).*nothing failed"),
        ("s3", "put", "503", r"storage at http://127\.0\.0\.1:\d+ unreachable for"),
    ],
    ids=["api", "s3"],
)
async def test_an_outage_past_max_outage_ends_the_run_and_a_rerun_resumes(
    sandbox: Sandbox, tmp_path: Path, server: str, op: str, mode: str, message: str
) -> None:
    files = make_tree(tmp_path / "audio", 30)
    ledger = tmp_path / "l.db"
    go_down_on(sandbox, op, 10, outage([server], mode))

    with pytest.raises(OutageError, match=message):
        await run_submit(sandbox, [tmp_path / "audio"], ledger, max_outage=1.5, **FAST)

    by_state = states(ledger)
    assert FileState.FAILED.value not in by_state and by_state.get(FileState.CREATED.value, 0) < 30
    sandbox.set_faults(FaultPlan())
    again = await run_submit(sandbox, [tmp_path / "audio"], ledger, **FAST)
    assert again.failed == 0 and states(ledger) == {FileState.CREATED.value: 30}
    assert_exactly_once(sandbox, files)


def test_max_outage_is_a_flag_an_environment_variable_and_a_config_key(tmp_path: Path) -> None:
    from pipeline import load_settings

    assert load_settings().max_outage == 300.0
    assert load_settings(max_outage=12).max_outage == 12.0
    env: dict[str, Any] = child_env({"SLNG_BULK_MAX_OUTAGE": "7"})
    result = run_cli("submit", "--help", env=env)
    assert "--max-outage" in result.stdout
