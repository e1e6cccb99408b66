"""Crash safety and unattended runs: SIGKILL anywhere, then rerun until done, and still exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.ledger import SqliteLedger, acquire_run_lock
from pipeline.sandbox import FaultPlan, Sandbox
from tests.support.audio import make_tree, write_wav
from tests.support.runs import (
    assert_exactly_once,
    cli_env,
    run_cli,
    run_submit,
    start_cli,
    successful_creates,
    total_requests,
)

pytestmark = pytest.mark.anyio


def kill_when(
    sb: Sandbox, proc: subprocess.Popen[str], operation: str, threshold: int, limit: float = 30.0
) -> bool:
    """SIGKILL `proc` once the sandbox has seen `threshold` requests of `operation`. True if killed."""
    deadline = time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < deadline:
        seen = sb.stats().requests.get(operation)
        if seen is not None and seen.total >= threshold:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    proc.wait()
    return False


@pytest.mark.slow
def test_sigkill_at_many_points_then_rerun_creates_every_job_exactly_once(
    sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "audio", 300)
    ledger = tmp_path / "l.db"
    sandbox_thread.set_faults(
        FaultPlan.model_validate(
            {
                "seed": 11,
                "operations": {
                    "create": {"lost_response": {"probability": 0.03}, "latency": {"fixed_ms": 2}},
                    "put": {"latency": {"fixed_ms": 2}},
                    "presign": {"latency": {"fixed_ms": 1}},
                },
            }
        )
    )
    env = cli_env(sandbox_thread, ledger)
    args = ["submit", str(tmp_path / "audio"), "--concurrency", "16"]
    rng = random.Random(5)
    operations = ["presign", "put", "create"]  # ledger writes sit between each of them
    kills = 0
    for run in range(40):
        if kills >= 24:
            break
        operation = operations[run % len(operations)]
        current = sandbox_thread.stats().requests.get(operation)
        threshold = (current.total if current else 0) + rng.randint(1, 10)
        proc = start_cli(args, env, tmp_path)
        if kill_when(sandbox_thread, proc, operation, threshold):
            kills += 1
        elif proc.returncode == 0:
            break
    assert kills >= 20, f"only {kills} kills landed"
    for _ in range(5):  # now let it finish
        final = run_cli(*args, env=env, cwd=tmp_path)
        if final.returncode == 0:
            break
    assert final.returncode == 0, final.stderr
    assert_exactly_once(sandbox_thread, files)
    creates = successful_creates(sandbox_thread)
    assert len(creates) == len(set(creates)) == 300


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_rerun_finishes(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "audio", 60)
    ledger = tmp_path / "l.db"
    sandbox_thread.set_faults(
        FaultPlan.model_validate({"operations": {"put": {"latency": {"fixed_ms": 50}}}})
    )
    env = cli_env(sandbox_thread, ledger)
    proc = start_cli(["submit", str(tmp_path / "audio"), "--concurrency", "4", "--grace", "5"], env, tmp_path)
    kill_when_seen = time.monotonic() + 20
    while time.monotonic() < kill_when_seen:
        seen = sandbox_thread.stats().requests.get("create")
        if seen is not None and seen.total >= 5:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "stopped early" in err and "Traceback" not in err
    counts = SqliteLedger(ledger).count_by_state()
    assert set(counts) <= {"pending", "created"}, counts  # in-flight files finished within the grace period
    sandbox_thread.set_faults(FaultPlan())
    done = run_cli("submit", str(tmp_path / "audio"), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_exactly_once(sandbox_thread, files)


def test_max_duration_stops_taking_files(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "audio", 40)
    sandbox_thread.set_faults(
        FaultPlan.model_validate({"operations": {"create": {"latency": {"fixed_ms": 100}}}})
    )
    env = cli_env(sandbox_thread, tmp_path / "l.db")
    result = run_cli(
        "submit",
        str(tmp_path / "audio"),
        "--concurrency",
        "2",
        "--max-duration",
        "0.5",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == ExitCode.INTERRUPTED, result.stderr
    assert "--max-duration" in result.stderr
    assert len(sandbox_thread.jobs().jobs) < 40


def test_lock_held_by_another_run(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "audio", 2)
    lock = acquire_run_lock(tmp_path / "l.db")
    try:
        result = run_cli(
            "submit", str(tmp_path / "audio"), env=cli_env(sandbox_thread, tmp_path / "l.db"), cwd=tmp_path
        )
    finally:
        lock.release()
    assert result.returncode == ExitCode.LOCKED
    assert "another slng-bulk run" in result.stderr
    assert total_requests(sandbox_thread) == 0


@pytest.mark.slow
def test_two_concurrent_runs_do_not_both_proceed(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "audio", 30)
    sandbox_thread.set_faults(
        FaultPlan.model_validate({"operations": {"put": {"latency": {"fixed_ms": 20}}}})
    )
    env = cli_env(sandbox_thread, tmp_path / "l.db")
    procs = [start_cli(["submit", str(tmp_path / "audio")], env, tmp_path) for _ in range(2)]
    codes = sorted(p.wait(timeout=60) for p in procs)
    assert codes == [ExitCode.OK, ExitCode.LOCKED]
    assert_exactly_once(sandbox_thread, files)


def test_dead_holder_lock_is_taken_over(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "audio", 3)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import pathlib, time; from pipeline.ledger import acquire_run_lock; "
                f"acquire_run_lock(pathlib.Path({str(tmp_path / 'l.db')!r})); "
                "print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    result = run_cli(
        "submit", str(tmp_path / "audio"), env=cli_env(sandbox_thread, tmp_path / "l.db"), cwd=tmp_path
    )
    assert result.returncode == ExitCode.OK, result.stderr


async def test_settle_skips_files_still_being_written(sandbox: Sandbox, tmp_path: Path) -> None:
    old = make_tree(tmp_path / "audio", 2)
    for f in old:
        os.utime(f, (time.time() - 120, time.time() - 120))
    fresh = write_wav(tmp_path / "audio" / "now.wav", freq=700.0)
    stats = await run_submit(sandbox, [tmp_path / "audio"], tmp_path / "l.db", settle=60)
    assert (stats.created, stats.skipped_unsettled) == (2, 1)
    os.utime(fresh, (time.time() - 120, time.time() - 120))
    later = await run_submit(sandbox, [tmp_path / "audio"], tmp_path / "l.db", settle=60)
    assert (later.created, later.skipped_done) == (1, 2)


async def test_force_resubmits_as_new_jobs(sandbox: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "audio", 3)
    await run_submit(sandbox, [tmp_path / "audio"], tmp_path / "l.db")
    forced = await run_submit(sandbox, [tmp_path / "audio"], tmp_path / "l.db", force=True)
    assert forced.created == 3
    assert len(sandbox.jobs().jobs) == 6
    creates = successful_creates(sandbox)
    assert len(creates) == len(set(creates))


async def test_a_changed_file_is_a_new_file(sandbox: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "audio", 2)
    await run_submit(sandbox, [tmp_path / "audio"], tmp_path / "l.db")
    write_wav(files[0], seconds=0.1, freq=1234.0)
    again = await run_submit(sandbox, [tmp_path / "audio"], tmp_path / "l.db")
    assert (again.created, again.skipped_done) == (1, 1)


async def test_transient_failures_exhausted_exit_failed_and_rerun_recovers(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "audio", 3)
    sandbox.set_faults(
        FaultPlan.model_validate(
            {"operations": {"create": {"errors": [{"status": 500, "probability": 1.0}]}}}
        )
    )
    stats = await run_submit(sandbox, [tmp_path / "audio"], tmp_path / "l.db", retries=1)
    assert stats.failed == 3 and stats.exit_code() is ExitCode.FAILED
    assert all("HTTP 500" in f.error for f in stats.failures)
    sandbox.set_faults(FaultPlan())
    again = await run_submit(sandbox, [tmp_path / "audio"], tmp_path / "l.db")
    assert again.created == 3 and again.exit_code() is ExitCode.OK
    assert_exactly_once(sandbox, files)


def test_dry_run_counts_without_remote_calls(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "audio", 4, seconds=0.5)
    (tmp_path / "audio" / "empty.wav").write_bytes(b"")
    result = run_cli(
        "submit",
        str(tmp_path / "audio"),
        "--dry-run",
        env=cli_env(sandbox_thread, tmp_path / "l.db"),
        cwd=tmp_path,
    )
    assert result.returncode == ExitCode.REJECTED, result.stderr
    assert "4 valid files, 1 rejected row" in result.stdout
    assert "0.00 h of audio" in result.stdout or "h of audio" in result.stdout
    assert total_requests(sandbox_thread) == 0
    assert not (tmp_path / "l.db").exists()


def test_json_logs_and_report_export(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "audio", 2)
    env = cli_env(sandbox_thread, tmp_path / "l.db")
    env["SLNG_BULK_LOG_LEVEL"] = "info"
    result = run_cli(
        "submit",
        str(tmp_path / "audio"),
        "--log-format",
        "json",
        "--progress",
        "lines",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    import json

    log_lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    assert log_lines and all("level" in json.loads(line) for line in log_lines)
    exported = run_cli("report", "--format", "jsonl", env=env, cwd=tmp_path)
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["state"] for r in rows] == ["created", "created"]


def test_sigterm_while_waiting_on_stdin_exits_promptly(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "audio", 2)
    feeder = start_cli(
        ["submit", "-", "--grace", "30"],
        cli_env(sandbox_thread, tmp_path / "l.db"),
        tmp_path,
        pipe_stdin=True,
    )
    assert feeder.stdin is not None
    feeder.stdin.write("\n".join(str(f) for f in files) + "\n")
    feeder.stdin.flush()  # and never close it: the producer now blocks on the next line
    deadline = time.monotonic() + 20
    while len(sandbox_thread.jobs().jobs) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    feeder.send_signal(signal.SIGTERM)
    _out, err = feeder.communicate(timeout=20)
    assert feeder.returncode == ExitCode.INTERRUPTED, err
    assert time.monotonic() - started < 10, "a blocked stdin must not hold the run for the grace period"
    assert len(sandbox_thread.jobs().jobs) == 2
