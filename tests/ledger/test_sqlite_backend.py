"""What only the SQLite backend does: the file on disk, its lock, its migrations, its writer."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from pipeline.errors import ConfigError, ErrorClass, LedgerWriteError, LockHeldError
from pipeline.ledger import FileState, HistoryKind, SqliteLedger, acquire_run_lock, open_ledger, sqlite_path
from pipeline.ledger import writer as writer_module
from pipeline.ledger.postgres import PostgresLedger
from pipeline.ledger.schema import MIGRATIONS
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.rows import Rejection
from tests.ledger.conftest import make_spec
from tests.support.stored import records_by_key

pytestmark = pytest.mark.anyio


def test_targets_name_the_backend(tmp_path: Path) -> None:
    assert sqlite_path(tmp_path / "l.db") == tmp_path / "l.db"
    assert sqlite_path("sqlite:///rel/l.db") == Path("rel/l.db")
    assert sqlite_path(f"sqlite:///{tmp_path}/l.db") == tmp_path / "l.db"
    assert isinstance(open_ledger("l.db"), SqliteLedger)
    shared = open_ledger("postgresql://user:pw@db/ledger", host="h1")
    assert isinstance(shared, PostgresLedger)
    assert (shared.location, shared.host) == ("postgresql://user:***@db/ledger", "h1")


async def test_ledger_file_is_owner_only_and_secrets_never_reach_the_disk(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    async with SqliteLedger(tmp_path / "l.db") as ledger:
        record = (await ledger.admit(spec, file_key(spec), "jobone", "r")).record
        assert record is not None
        await ledger.mark_failed(
            record, "PUT https://s3/x?X-Amz-Signature=abcdef123 failed", ErrorClass.TRANSIENT
        )
        await ledger.finish_run("r", {"note": "https://s3/y?X-Amz-Signature=feedbeef99"})
    assert stat.S_IMODE(os.stat(tmp_path / "l.db").st_mode) == 0o600
    wal = tmp_path / "l.db-wal"
    raw = (tmp_path / "l.db").read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert b"abcdef123" not in raw and b"feedbeef99" not in raw


async def test_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "l.db")
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(ConfigError, match="newer than this slng-bulk understands"):
        async with SqliteLedger(tmp_path / "l.db"):
            pass


async def test_history_of_an_older_ledger_gets_its_kind_from_the_reasons_it_wrote(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:  # a ledger as slng-bulk wrote it before history kinds existed
        conn.executescript(script)
    conn.execute("PRAGMA user_version=2")
    for n, reason in enumerate(
        ["job FAILED on the server: bad audio", "resubmitted (--force)", "reconcile: a later job", "?"]
    ):
        conn.execute(
            "INSERT INTO files(id, file_key, source, path, relative_path, size, mtime_ns, settings_hash,"
            " settings_json, state, job_id, generation, admitted_at, updated_at)"
            " VALUES (?, ?, 'm.csv', ?, ?, 1, 1, 'h', '{}', 'pending', ?, 1, 0, 0)",
            (n + 1, f"k{n}", f"/a/{n}.wav", f"{n}.wav", f"new-{n}"),
        )
        conn.execute(
            "INSERT INTO job_history(file_id, job_id, state, error, replaced_at)"
            " VALUES (?, ?, 'failed', ?, 0)",
            (n + 1, f"old-{n}", reason),
        )
    conn.commit()
    conn.close()
    async with SqliteLedger(path) as ledger:
        assert [r.job_id for r in ledger.renewed_not_created(HistoryKind.RETRY_FAILED)] == ["new-0"]
        assert [r.job_id for r in ledger.renewed_not_created(HistoryKind.FORCED)] == ["new-1"]
        assert [r.job_id for r in ledger.renewed_not_created(HistoryKind.RECONCILED)] == ["new-2"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("SELECT error FROM job_history WHERE kind IS NULL").fetchall() == [("?",)]


def test_second_lock_holder_is_refused_and_released_lock_is_free(tmp_path: Path) -> None:
    first = acquire_run_lock(tmp_path / "l.db")
    with pytest.raises(LockHeldError, match="another slng-bulk run is using the ledger"):
        acquire_run_lock(tmp_path / "l.db")
    first.release()
    acquire_run_lock(tmp_path / "l.db").release()


async def test_one_refused_write_does_not_undo_the_others_in_its_batch(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    path = tmp_path / "l.db"
    async with SqliteLedger(path) as ledger:
        record = (await ledger.admit(spec, file_key(spec), derive_job_id(file_key(spec)), "r")).record
        assert record is not None
        await ledger.flush()  # committed: the writer holds no transaction while the trigger is made
        # A constraint the database itself enforces refuses this one change, and only it.
        conn = sqlite3.connect(path)
        conn.execute(
            "CREATE TRIGGER no_creating BEFORE UPDATE OF state ON files WHEN NEW.state = 'creating'"
            " BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"
        )
        conn.close()
        await ledger.reject("r", Rejection("m.csv", 3, None, "file not found"))
        with pytest.raises(LedgerWriteError, match=f"ledger {path}: cannot write: refused by trigger"):
            await ledger.mark_creating(record, 1)
        await ledger.reject("r", Rejection("m.csv", 4, None, "not audio"))
        await ledger.flush()
        assert [r.line for r in ledger.rejections("r")] == [3, 4]
        assert ledger.count_by_state() == {"pending": 1}


async def test_a_refused_statement_among_write_behind_ones_undoes_only_itself(tmp_path: Path) -> None:
    """Single statements run without a savepoint of their own: SQLite undoes the refused one alone."""
    specs = [make_spec(tmp_path, f"f{i}.wav") for i in range(6)]
    path = tmp_path / "l.db"
    async with SqliteLedger(path) as ledger:
        records = []
        for spec in specs:
            admission = await ledger.admit(spec, file_key(spec), derive_job_id(file_key(spec)), "r")
            assert admission.record is not None
            records.append(admission.record)
        await ledger.flush()
        conn = sqlite3.connect(path)
        conn.execute(
            "CREATE TRIGGER no_upload BEFORE UPDATE OF state ON files"
            f" WHEN NEW.state = 'uploaded' AND OLD.id = {records[2].id}"
            " BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"
        )
        conn.close()
        # Queued back to back, so one batch holds them all; the third file's upload is refused.
        for record in records:
            presigned = await ledger.mark_presigned(record, f"inputs/{record.job_id}/a.wav", {}, attempts=1)
            await ledger.mark_uploaded(presigned, "md5")
        await ledger.flush()
        stored = records_by_key(ledger, [r.file_key for r in records])
    states = [(stored[r.file_key].state, stored[r.file_key].attempts) for r in records]
    uploaded, refused = (FileState.UPLOADED, 1), (FileState.PRESIGNED, 1)
    assert states == [uploaded, uploaded, refused, uploaded, uploaded, uploaded]


async def test_changes_nobody_waits_to_see_committed_are_committed_once_the_queue_drains(
    tmp_path: Path,
) -> None:
    """Applied and written-behind changes may share one transaction while more keep coming; once
    the writer has nothing queued it commits them without a flush, so other readers see them."""
    specs = [make_spec(tmp_path, f"f{i}.wav") for i in range(300)]
    async with SqliteLedger(tmp_path / "l.db") as ledger:

        async def journey(i: int) -> None:
            spec = specs[i]
            admission = await ledger.admit(spec, file_key(spec), derive_job_id(file_key(spec)), "r")
            assert admission.record is not None
            await ledger.mark_presigned(admission.record, f"inputs/{i}/a.wav", {}, attempts=1)

        async with anyio.create_task_group() as group:
            for i in range(len(specs)):
                group.start_soon(journey, i)
        for _ in range(1000):  # up to 10 s, never a flush
            if ledger.count_by_state() == {"presigned": 300}:
                break
            await anyio.sleep(0.01)
        assert ledger.count_by_state() == {"presigned": 300}


async def test_an_admission_shares_its_commit_with_the_create_intent_that_follows(tmp_path: Path) -> None:
    """Applied, the admission's transaction stays open for a moment: the next durable write
    commits both with one fsync instead of two."""
    spec = make_spec(tmp_path)
    async with SqliteLedger(tmp_path / "l.db") as ledger:
        statements: list[str] = []
        assert ledger._write_conn is not None
        ledger._write_conn.set_trace_callback(statements.append)
        record = (await ledger.admit(spec, file_key(spec), derive_job_id(file_key(spec)), "r")).record
        assert record is not None
        await ledger.mark_creating(record, 1)
        seen = list(statements)  # the callback stays (see the checkpoint test below: a deadlock)
    assert [s for s in seen if s in ("BEGIN IMMEDIATE", "COMMIT")] == ["BEGIN IMMEDIATE", "COMMIT"]


async def test_a_durable_write_costs_one_trip_to_the_writer_thread_whatever_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each trip to the writer's thread waits for the event loop and the GIL (milliseconds on a
    busy loop) and the writer makes them one at a time, so they bound the ledger's pace: a create
    intent joining an open transaction is applied and committed in one trip, and an admission
    queued with it is answered in that same trip."""
    specs = [make_spec(tmp_path, f"f{i}.wav") for i in range(3)]
    keys = [file_key(spec) for spec in specs]
    async with SqliteLedger(tmp_path / "l.db") as ledger:
        writer = ledger._w
        trips: list[str] = []
        run_sync = anyio.to_thread.run_sync

        async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(func, "__self__", None) is writer:
                trips.append(func.__name__)
            return await run_sync(func, *args, **kwargs)

        monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
        first = (await ledger.admit(specs[0], keys[0], derive_job_id(keys[0]), "r")).record
        assert first is not None and len(trips) == 1  # applied: the transaction stays open
        await ledger.mark_creating(first, 1)
        assert len(trips) == 2  # joined the open transaction and committed it, in one trip
        second = (await ledger.admit(specs[1], keys[1], derive_job_id(keys[1]), "r")).record
        assert second is not None
        trips.clear()
        async with anyio.create_task_group() as group:  # queued together: one batch
            group.start_soon(ledger.mark_creating, second, 1)
            group.start_soon(ledger.admit, specs[2], keys[2], derive_job_id(keys[2]), "r")
        assert len(trips) == 1
        assert ledger.count_by_state() == {"creating": 2, "pending": 1}


async def test_a_durable_write_returns_once_committed_not_after_the_checkpoint_that_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WAL checkpoint after a commit costs another fsync or two: the caller waiting for the
    commit (a create intent, before its request) is answered first, not after it."""
    monkeypatch.setattr(writer_module, "WAL_FLOOR", 0)  # checkpoint after every commit
    monkeypatch.setattr(writer_module, "WAL_SHARE", 10**9)
    gate = threading.Event()
    waited: list[bool] = []

    def trace(statement: str) -> None:
        if statement.startswith("PRAGMA wal_checkpoint"):
            waited.append(gate.wait(timeout=5))  # held until the caller is back (or 5 s)

    async with SqliteLedger(tmp_path / "l.db") as ledger:
        assert ledger._write_conn is not None
        ledger._write_conn.set_trace_callback(trace)
        await ledger.start_run("r")
        gate.set()
        # The callback stays: touching the connection from this thread while the writer's thread
        # runs a statement on it deadlocks (this thread holds the GIL waiting for SQLite's mutex,
        # the writer holds the mutex waiting for the GIL to call the callback).
        await ledger.flush()
    assert waited and waited[0] is True  # the checkpoint was still held when start_run returned


async def test_changes_are_applied_in_the_order_they_were_asked_for(tmp_path: Path) -> None:
    """A waiting write is queued at once, like one written behind: it does not first yield to the
    loop (a full turn of a busy loop on a file's critical path), so call order is apply order."""
    applied: list[str] = []

    def change(name: str) -> Any:
        return lambda conn: applied.append(name)

    async with SqliteLedger(tmp_path / "l.db") as ledger:
        writer = ledger._w
        async with anyio.create_task_group() as group:
            group.start_soon(writer.write, change("durable"))
            group.start_soon(writer.write_applied, change("applied"))
            group.start_soon(writer.write_behind, change("behind"))
        await ledger.flush()
    assert applied == ["durable", "applied", "behind"]


@pytest.mark.timeout(20)  # the bug this guards against is a caller waiting forever
async def test_a_cancelled_run_still_answers_every_queued_durable_write(tmp_path: Path) -> None:
    # The writer's own task is inside what a signal cancels (status, fetch): a change queued while
    # an earlier batch commits must still be written and its caller woken, not left waiting.
    path = tmp_path / "l.db"
    done: list[str] = []

    def slow_change(name: str) -> Any:
        def change(conn: sqlite3.Connection) -> None:
            time.sleep(0.3)  # in the writer's thread: the next write queues meanwhile
            conn.execute("INSERT INTO runs(run_id, started_at) VALUES (?, 0)", (name,))

        return change

    with anyio.CancelScope() as scope:  # around the ledger's opening, as a signal's is
        async with SqliteLedger(path) as ledger:
            writer = ledger._w

            async def write(name: str) -> None:
                await writer.write(slow_change(name))
                done.append(name)

            async with anyio.create_task_group() as group:
                group.start_soon(write, "first")
                await anyio.sleep(0.1)  # the first batch is in the writer's thread now
                group.start_soon(write, "second")
                await anyio.sleep(0.05)
                scope.cancel()
    assert sorted(done) == ["first", "second"]
    conn = sqlite3.connect(path)
    assert {row[0] for row in conn.execute("SELECT run_id FROM runs")} == {"first", "second"}
    conn.close()
