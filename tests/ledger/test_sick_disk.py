"""The ledger on a sick disk: full mid-run, full at open, read-only. Real filesystems (a small
tmpfs), real SQLite, and for the runs the real CLI against the sandbox."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from pipeline.commands.connect import connect
from pipeline.errors import ConfigError, ExitCode, LedgerWriteError
from pipeline.follow.refresh import refresh_statuses
from pipeline.ledger import FileState, SqliteLedger, acquire_run_lock
from pipeline.sandbox import FaultPlan, Sandbox
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.rows import Rejection
from tests.ledger.conftest import make_spec
from tests.ledger.disks import fill, make_read_only, small_tmpfs
from tests.support.audio import make_tree
from tests.support.runs import assert_exactly_once, cli_env, run_cli, run_submit, settings_for, start_cli
from tests.support.stored import records_by_key

FULL = "database or disk is full"


# --- the writer: a failed commit reaches every caller, now and later ----------------------------


@pytest.mark.anyio
async def test_a_full_disk_fails_every_writer_caller_and_later_ones_without_hanging(tmp_path: Path) -> None:
    specs = [make_spec(tmp_path, f"f{i}.wav") for i in range(400)]
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        path = disk / "l.db"
        async with SqliteLedger(path) as ledger:
            first = (await ledger.admit(specs[0], file_key(specs[0]), "job-first", "r")).record
            assert first is not None
            await ledger.flush()  # an admission is applied, not committed: this one is on disk now
            filler = fill(disk)
            failures: list[BaseException] = []

            async def admit(i: int) -> None:
                spec = specs[i]
                try:
                    await ledger.admit(spec, file_key(spec), derive_job_id(file_key(spec)), "r")
                except LedgerWriteError as exc:
                    failures.append(exc)

            with anyio.fail_after(20):  # today: the writer dies and these wait forever
                async with anyio.create_task_group() as group:
                    for i in range(1, len(specs)):
                        group.start_soon(admit, i)
                # Admissions return once applied, so the full disk may show only at their commit:
                # then the next durable write is the first to fail, and every later call fails too.
                assert all(FULL in str(exc) for exc in failures), failures
                with pytest.raises(LedgerWriteError, match=FULL) as broken:
                    await ledger.mark_creating(first, 1)
                assert str(path) in str(broken.value), broken.value
                with pytest.raises(LedgerWriteError, match=FULL):
                    await ledger.reject("r", Rejection("m.csv", 3, None, "x"))
                with pytest.raises(LedgerWriteError):
                    await ledger.flush()
        filler.unlink()
        # What was committed is whole; the ledger opens and writes again once there is room.
        async with SqliteLedger(path) as ledger:
            assert records_by_key(ledger, [first.file_key])[first.file_key].state is FileState.PENDING
            await ledger.mark_creating(first, 1)
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.anyio
async def test_an_admission_applied_before_a_failed_commit_lets_nothing_be_created_on_top(
    tmp_path: Path,
) -> None:
    known, new = make_spec(tmp_path, "known.wav"), make_spec(tmp_path, "new.wav")
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        path = disk / "l.db"
        async with SqliteLedger(path) as ledger:
            assert (await ledger.admit(known, file_key(known), "job-known", "r")).record is not None
            await ledger.flush()
            filler = fill(disk)
            with anyio.fail_after(20):
                # Applied in the open transaction: the journey has its record and job_id at once...
                admission = await ledger.admit(new, file_key(new), derive_job_id(file_key(new)), "r")
                record = admission.record
                assert record is not None and record.state is FileState.PENDING
                # ...but its commit fails on the full disk: the create intent that a create would
                # need is refused, so no create is ever sent for a file the ledger does not hold.
                with pytest.raises(LedgerWriteError, match=FULL):
                    await ledger.mark_creating(record, 1)
                with pytest.raises(LedgerWriteError, match=FULL):
                    await ledger.mark_presigned(record, "inputs/x/new.wav", {}, attempts=1)
        filler.unlink()
        async with SqliteLedger(path) as ledger:
            # The lost admission is simply not there: the next run admits it again, same job_id.
            assert set(records_by_key(ledger, [file_key(known), file_key(new)])) == {file_key(known)}
            again = await ledger.admit(new, file_key(new), derive_job_id(file_key(new)), "r2")
            assert again.record is not None and again.record.job_id == record.job_id
            await ledger.flush()
            assert ledger.count_by_state() == {"pending": 2}
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


# --- the CLI: a disk that fills mid-run stops the run with one line, exit 9 ----------------------


def _fill_when_created(sb: Sandbox, disk: Path, creates: int, limit: float = 30.0) -> Path:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        seen = sb.stats().requests.get("create")
        if seen is not None and seen.total >= creates:
            break
        time.sleep(0.01)
    return fill(disk)


@pytest.mark.slow
def test_disk_full_mid_run_stops_with_one_line_and_a_rerun_finishes(
    sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "audio", 120)
    sandbox_thread.set_faults(
        FaultPlan.model_validate({"operations": {"put": {"latency": {"fixed_ms": 20}}}})
    )
    with small_tmpfs(tmp_path / "disk", "8m") as disk:
        env = cli_env(sandbox_thread, disk / "l.db")
        args = ["submit", str(tmp_path / "audio"), "--concurrency", "8"]
        proc = start_cli(args, env, tmp_path)
        filler = _fill_when_created(sandbox_thread, disk, 10)
        try:
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == ExitCode.LEDGER, err
        assert "Traceback" not in err
        [line] = err.strip().splitlines()  # one line, naming the ledger and the cause
        assert line == f"slng-bulk: error: ledger {disk / 'l.db'}: cannot write: {FULL}"
        assert len(sandbox_thread.jobs().jobs) < len(files)  # it stopped, not soldiered on
        filler.unlink()
        again = run_cli(*args, env=env, cwd=tmp_path)
        assert again.returncode == ExitCode.OK, again.stderr
    assert_exactly_once(sandbox_thread, files)


@pytest.mark.slow
def test_sigterm_while_a_full_disk_stops_the_run_still_exits_6(
    sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "audio", 60)
    sandbox_thread.set_faults(
        FaultPlan.model_validate({"operations": {"put": {"latency": {"fixed_ms": 300}}}})
    )
    with small_tmpfs(tmp_path / "disk", "8m") as disk:
        env = cli_env(sandbox_thread, disk / "l.db")
        args = ["submit", str(tmp_path / "audio"), "--concurrency", "4", "--grace", "5"]
        proc = start_cli(args, env, tmp_path)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not sandbox_thread.stats().requests.get("put"):
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)  # in-flight uploads then finish into a full ledger
        filler = fill(disk)
        try:
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == ExitCode.INTERRUPTED, err
        assert "Traceback" not in err
        filler.unlink()
        again = run_cli(*args[:2], env=env, cwd=tmp_path)
        assert again.returncode == ExitCode.OK, again.stderr
    assert_exactly_once(sandbox_thread, files)


# --- a read-only ledger path: one line, exit 8 (configuration), before any remote call ---------


def test_lock_on_a_read_only_path_is_a_configuration_error(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        make_read_only(disk)
        with pytest.raises(
            ConfigError, match=f"cannot lock the ledger {disk / 'l.db'}: .*Read-only file system"
        ):
            acquire_run_lock(disk / "l.db")


@pytest.mark.anyio
async def test_an_existing_ledger_on_a_read_only_path_is_refused_at_open(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        async with SqliteLedger(disk / "l.db") as ledger:
            await ledger.start_run("r")
        make_read_only(disk)
        with pytest.raises(ConfigError, match=f"cannot open ledger {disk / 'l.db'}: Read-only file system"):
            async with SqliteLedger(disk / "l.db"):
                pass


@pytest.mark.parametrize("existing", [False, True], ids=["new-ledger", "existing-ledger"])
def test_submit_with_the_ledger_on_a_read_only_path_exits_8_with_one_line(
    sandbox_thread: Sandbox, tmp_path: Path, existing: bool
) -> None:
    make_tree(tmp_path / "audio", 2)
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        env = cli_env(sandbox_thread, disk / "l.db")
        if existing:
            first = run_cli("submit", str(tmp_path / "audio"), env=env, cwd=tmp_path)
            assert first.returncode == ExitCode.OK, first.stderr
        make_read_only(disk)
        result = run_cli("submit", str(tmp_path / "audio"), "--force", env=env, cwd=tmp_path)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("slng-bulk: error: ") and str(disk / "l.db") in line, line
    assert "Read-only file system" in line or "readonly" in line, line


# --- a disk already full when the ledger is first made: the real cause, exit 8 -----------------


@pytest.mark.anyio
@pytest.mark.parametrize("room_kib", [0, 4, 16, 48, 64])
async def test_a_disk_full_before_the_ledger_is_made_reports_the_real_cause(
    tmp_path: Path, room_kib: int
) -> None:
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        fill(disk, leave=room_kib * 1024)
        with pytest.raises(ConfigError) as caught:
            async with SqliteLedger(disk / "l.db"):
                pass
    message = str(caught.value)
    assert "cannot rollback" not in message  # the cleanup's own complaint masked the cause
    assert message.startswith(f"cannot open ledger {disk / 'l.db'}: "), message
    assert FULL in message or "disk I/O error" in message, message
    assert "KiB free on its filesystem" in message, message


def test_submit_on_a_full_disk_exits_8_with_the_real_cause(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "audio", 2)
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        fill(disk)
        result = run_cli(
            "submit", str(tmp_path / "audio"), env=cli_env(sandbox_thread, disk / "l.db"), cwd=tmp_path
        )
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"slng-bulk: error: cannot open ledger {disk / 'l.db'}: {FULL} (0 KiB free on its filesystem)"
    ]
    assert not sandbox_thread.stats().requests  # nothing was sent


# --- the follow commands: a full disk is the same one error, not an exception group ------------


@pytest.mark.anyio
async def test_status_refresh_on_a_full_disk_raises_the_ledger_error_itself(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    make_tree(tmp_path / "audio", 3)
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        settings = settings_for(sandbox, disk / "l.db")
        stats = await run_submit(sandbox, [tmp_path / "audio"], disk / "l.db")
        assert stats.created == 3
        async with connect(settings) as conn:
            filler = fill(disk)
            with anyio.fail_after(30), pytest.raises(LedgerWriteError, match=FULL):
                await refresh_statuses(conn.ledger, conn.client, conn.policy)
            filler.unlink()
