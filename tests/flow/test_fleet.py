"""Scale-out: four `work` processes on one shared PostgreSQL ledger, two of them SIGKILLed mid-run.

The survivors take the dead workers' files over once their leases run out, and the sandbox's own
record shows every file uploaded and every job created exactly once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from pipeline.errors import ExitCode
from pipeline.ledger import FileState
from pipeline.ledger.leases import takeovers
from pipeline.ledger.postgres import PostgresLedger
from pipeline.sandbox import FaultPlan, Sandbox
from pipeline.sandbox.timeutil import parse_iso
from tests.support.audio import make_tree
from tests.support.runs import assert_exactly_once, cli_env, run_cli, start_cli

FILES = 300


def creates_seen(sb: Sandbox) -> int:
    seen = sb.stats().requests.get("create")
    return seen.total if seen is not None else 0


def wait_for_creates(sb: Sandbox, count: int, procs: list[subprocess.Popen[str]], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while creates_seen(sb) < count:
        assert time.monotonic() < deadline, f"only {creates_seen(sb)} creates after {limit} s"
        assert any(p.poll() is None for p in procs), "every worker ended early"
        time.sleep(0.01)


def run_fleet(
    sb: Sandbox, postgres_url: str, audio: Path, workers: int, args: list[str], timeout: float
) -> None:
    """Enqueue the folder `audio`, then `workers` `work ARGS` processes at once, each to exit 0."""
    env = cli_env(sb, postgres_url)
    assert run_cli("enqueue", str(audio), env=env, cwd=audio.parent).returncode == 0
    procs = [start_cli(["work", *args], env, audio.parent) for _ in range(workers)]
    for proc in procs:
        _out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err


@pytest.mark.slow
def test_four_workers_one_killed_twice_every_file_exactly_once(
    sandbox_thread: Sandbox, postgres_url: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "audio", FILES)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\n" + "".join(f"{f}\n" for f in files))
    sandbox_thread.set_faults(
        FaultPlan.model_validate(
            {
                "seed": 3,
                "operations": {
                    "put": {"latency": {"fixed_ms": 15}},
                    "create": {"latency": {"fixed_ms": 5}, "lost_response": {"probability": 0.02}},
                },
            }
        )
    )
    env = cli_env(sandbox_thread, postgres_url)
    loaded = run_cli("enqueue", str(manifest), env=env, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert f"{FILES} files enqueued" in loaded.stderr

    args = [
        "work",
        "--concurrency",
        "4",
        "--lease-timeout",
        "3",
        "--max-create-rps",
        "60",
        "--max-presign-rps",
        "60",
    ]
    workers = [start_cli([*args, "--host-name", f"host{i}"], env, tmp_path) for i in range(4)]
    wait_for_creates(sandbox_thread, 40, workers)
    workers[0].send_signal(signal.SIGKILL)
    wait_for_creates(sandbox_thread, 120, workers)
    workers[1].send_signal(signal.SIGKILL)
    outcomes = [proc.communicate(timeout=120) for proc in workers]
    assert [proc.returncode for proc in workers[:2]] == [-signal.SIGKILL, -signal.SIGKILL]
    for proc, (_out, err) in zip(workers[2:], outcomes[2:], strict=True):
        assert proc.returncode == 0, err

    assert_exactly_once(sandbox_thread, files)
    ledger = PostgresLedger(postgres_url)
    assert ledger.count_by_state() == {"created": FILES}
    dead = {f"host{i}:{workers[i].pid}:" for i in (0, 1)}
    taken = {src.rsplit(":", 1)[0] + ":" for _fid, src, _dst in takeovers(ledger)}
    assert taken == dead, f"takeovers from {taken}, killed {dead}"

    status = run_cli("status", env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    fleet = {line.split()[0]: line.split() for line in status.stdout.splitlines() if line.startswith("host")}
    assert {"host2", "host3"} <= set(fleet), status.stdout
    assert sum(int(fleet[h][3]) for h in fleet if h != "host") == FILES, "done, by host, adds up"
    password = urlsplit(postgres_url).password
    assert password and all(password not in text for pair in outcomes for text in pair)
    assert password not in status.stdout + status.stderr + loaded.stderr


@pytest.mark.slow
def test_the_create_rate_limit_holds_for_the_whole_fleet(
    sandbox_thread: Sandbox, postgres_url: str, tmp_path: Path
) -> None:
    """Two workers at --max-create-rps 10 create 60 jobs in no less than (60 - 10 burst) / 10 s:
    each alone would allow 10 per second, twice that together."""
    files = make_tree(tmp_path / "audio", 60)
    args = ["--concurrency", "8", "--max-create-rps", "10", "--max-presign-rps", "100"]
    run_fleet(sandbox_thread, postgres_url, tmp_path / "audio", 2, args, timeout=120)
    assert_exactly_once(sandbox_thread, files)
    times = sorted(parse_iso(attempt.at) for attempt in sandbox_thread.jobs().attempts)
    assert len(times) == 60
    assert times[-1] - times[0] >= 4.5, f"60 creates in {times[-1] - times[0]:.2f} s"


@pytest.mark.slow
def test_a_fleet_finds_the_servers_capacity_together(
    sandbox_thread: Sandbox, postgres_url: str, tmp_path: Path
) -> None:
    """Three workers, each told 80/s, against a server that takes 20 presigns and 20 creates a
    second: the fleet's rate follows the server (one curve in the ledger), no file fails, and
    few requests are refused."""
    files = make_tree(tmp_path / "audio", 240, seconds=0.05)
    sandbox_thread.set_capacity(presign=20, create=20)
    args = ["--concurrency", "8", "--max-create-rps", "80", "--max-presign-rps", "80"]
    run_fleet(sandbox_thread, postgres_url, tmp_path / "audio", 3, args, timeout=180)
    assert_exactly_once(sandbox_thread, files)
    requests = sandbox_thread.stats().requests
    refused = sum(requests[op].by_status.get("429", 0) for op in ("presign", "create"))
    total = sum(requests[op].total for op in ("presign", "create"))
    times = sorted(parse_iso(attempt.at) for attempt in sandbox_thread.jobs().attempts if attempt.created)
    span = times[-1] - times[0]
    print(f"\nfleet of 3 at C=20: 240 creates in {span:.1f} s (ideal 11.0), {refused}/{total} refused")
    # Measured on 2 shared cores (one estimate, one bucket of one second at the fleet's rate, late
    # echoes of refusals ignored): 11.1-14.7 s and 3-4% refused; before that, 20-27 s and 14-15%.
    # The bounds leave room for a busy CI machine.
    assert refused / total <= 0.08
    assert span <= 220 / 20 * 1.6


@pytest.mark.slow
def test_path_map_finds_the_files_where_this_host_mounts_them(
    sandbox_thread: Sandbox, postgres_url: str, tmp_path: Path
) -> None:
    """Enqueued as /…/nas/…, present here as /…/mirror/…: without the map every file is marked missing
    (and left for later); with it, every one is done, and the ledger keeps the recorded paths."""
    files = make_tree(tmp_path / "nas", 12)
    env = cli_env(sandbox_thread, postgres_url)
    assert run_cli("enqueue", str(tmp_path / "nas"), env=env, cwd=tmp_path).returncode == 0
    (tmp_path / "nas").rename(tmp_path / "mirror")  # same files, same mtimes, another mount point

    unmapped = run_cli("work", "--summary-json", str(tmp_path / "unmapped.json"), env=env, cwd=tmp_path)
    assert unmapped.returncode == ExitCode.FAILED, unmapped.stderr
    assert json.loads((tmp_path / "unmapped.json").read_text())["exit_code"] == ExitCode.FAILED
    assert "file is gone" in unmapped.stderr and "on host" in unmapped.stderr
    assert "check --path-map" in unmapped.stderr
    assert PostgresLedger(postgres_url).count_by_state() == {"failed": 12}

    rule = f"{tmp_path / 'nas'}={tmp_path / 'mirror'}"
    summary = tmp_path / "work.json"
    mapped = run_cli("work", "--path-map", rule, "--summary-json", str(summary), env=env, cwd=tmp_path)
    assert mapped.returncode == 0, mapped.stderr
    document = json.loads(summary.read_text())
    assert document["counts"]["created"] == 12  # offered by work, so written
    assert document["exit_code"] == mapped.returncode
    moved = [tmp_path / "mirror" / f.relative_to(tmp_path / "nas") for f in files]
    assert_exactly_once(sandbox_thread, moved)
    records = list(PostgresLedger(postgres_url).records())
    assert {r.state for r in records} == {FileState.CREATED}
    assert sorted(r.path for r in records) == sorted(str(f) for f in files), "recorded paths are kept"


def test_submit_runs_on_a_shared_ledger_too_and_a_rerun_has_nothing_to_do(
    sandbox_thread: Sandbox, postgres_url: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "audio", 5)
    env = cli_env(sandbox_thread, postgres_url)
    first = run_cli("submit", str(tmp_path / "audio"), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_cli("submit", str(tmp_path / "audio"), "--error-on-nothing", env=env, cwd=tmp_path)
    assert again.returncode == ExitCode.NOTHING_TO_DO, again.stderr
    assert_exactly_once(sandbox_thread, files)
    assert not (tmp_path / "postgresql:").exists(), "no lock file named after the URL"


@pytest.mark.slow
def test_a_stopped_worker_gives_its_claims_back_at_once(
    sandbox_thread: Sandbox, postgres_url: str, tmp_path: Path
) -> None:
    """SIGTERM: the worker finishes what it has in flight (--grace), releases every claim it still
    holds and exits 6; the next worker does not wait out any lease (here: an hour long)."""
    files = make_tree(tmp_path / "audio", 80)
    sandbox_thread.set_faults(
        FaultPlan.model_validate({"operations": {"put": {"latency": {"fixed_ms": 30}}}})
    )
    env = cli_env(sandbox_thread, postgres_url)
    assert run_cli("enqueue", str(tmp_path / "audio"), env=env, cwd=tmp_path).returncode == 0
    args = ["work", "--concurrency", "4", "--lease-timeout", "3600", "--grace", "10"]
    first = start_cli(args, env, tmp_path)
    wait_for_creates(sandbox_thread, 10, [first])
    first.send_signal(signal.SIGTERM)
    _out, err = first.communicate(timeout=60)
    assert first.returncode == ExitCode.INTERRUPTED, err
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT count(*) FROM claims").fetchone()
    assert row is not None and row[0] == 0, "no claim left behind"
    started = time.monotonic()
    second = run_cli(*args, env=env, cwd=tmp_path, timeout=120)
    assert second.returncode == 0, second.stderr
    assert time.monotonic() - started < 60
    assert_exactly_once(sandbox_thread, files)
