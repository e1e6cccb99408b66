"""A signal during status or fetch (commands without a worker pool of their own), or during the
wait and fetch of `submit --wait` after its pool is done, ends them with the documented exit 6:
never click's "Aborted!" exit 1 or a bare 143."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.ledger import SqliteLedger
from pipeline.sandbox import FaultPlan, Sandbox
from tests.support.audio import make_tree
from tests.support.runs import cli_env, run_cli, start_cli


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["status", "fetch"])
def test_a_signal_while_following_exits_6_with_one_line(
    sandbox_thread: Sandbox, tmp_path: Path, command: str, signum: signal.Signals
) -> None:
    make_tree(tmp_path / "audio", 3)
    ledger = tmp_path / "l.db"
    env = cli_env(sandbox_thread, ledger)
    assert run_cli("submit", str(tmp_path / "audio"), env=env, cwd=tmp_path).returncode == 0
    # Every status question now takes 30 s: the command is surely mid-request when signalled.
    args = [command] + (["--out", str(tmp_path / "out")] if command == "fetch" else [])
    err = signal_while_slow(sandbox_thread, ("get", "list"), args, env, tmp_path, signum)
    assert f"interrupted by {signum.name}" in err
    assert [line for line in err.splitlines() if line.startswith("slng-bulk:")] == [
        f"slng-bulk: interrupted by {signum.name}; what the ledger recorded is kept"
    ]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", ["wait", "fetch"])
def test_a_signal_while_submit_waits_exits_6_with_its_summary(
    sandbox_thread: Sandbox, tmp_path: Path, phase: str, signum: signal.Signals
) -> None:
    """The pool is done (every job created) and `--wait` is polling or `--out` fetching: the signal
    ends that at once, the summary still says what was created, and the ledger keeps it all."""
    files = make_tree(tmp_path / "audio", 3)
    ledger = tmp_path / "l.db"
    env = cli_env(sandbox_thread, ledger)
    # Polling: every status question takes 30 s. Fetching: jobs finish fast, downloads take 30 s.
    slowed = ("get", "list") if phase == "wait" else ("files", "download")
    args = ["submit", str(tmp_path / "audio"), "--wait", "--out", str(tmp_path / "out")]
    err = signal_while_slow(sandbox_thread, slowed, args, env, tmp_path, signum)
    assert f"stopped early: signal {signum.name}" in err
    assert SqliteLedger(ledger).count_by_state() == {"created": len(files)}


def signal_while_slow(
    sb: Sandbox,
    slowed: tuple[str, ...],
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    signum: signal.Signals,
) -> str:
    """Run `slng-bulk ARGS` with `slowed` operations taking 30 s, signal it once it is waiting on
    one, and check it ends at once, with exit 6 and no traceback. Its stderr."""
    slow = {"latency": {"distribution": "fixed", "fixed_ms": 30_000}}
    sb.set_faults(FaultPlan.model_validate({"operations": dict.fromkeys(slowed, slow)}))
    asked = threading.Event()
    sb.listen(on_arrival=lambda op, nth: asked.set() if op in slowed else None)
    proc = start_cli(args, env=env, cwd=cwd)
    assert asked.wait(30), f"{args[0]} never asked the server for {' or '.join(slowed)}"
    started = time.monotonic()
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert time.monotonic() - started < 10
    assert "Traceback" not in err and "Aborted" not in err
    sb.set_faults(FaultPlan())
    return err
