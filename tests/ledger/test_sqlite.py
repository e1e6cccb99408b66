"""The ledger against a real SQLite file: admission rules, durability, group commit, migrations."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import anyio
import pytest

from pipeline.api.models import TranscriptionConfig
from pipeline.errors import ConfigError, LockHeldError
from pipeline.ledger.sqlite import FileState, Ledger, acquire_run_lock
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.rows import FileSpec, JobSettings, Rejection

pytestmark = pytest.mark.anyio


def make_spec(tmp_path: Path, name: str = "a.wav", language: str = "en") -> FileSpec:
    path = tmp_path / name
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


async def test_admit_records_before_any_remote_step_and_survives_reopen(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    key = file_key(spec)
    async with Ledger.open(tmp_path / "l.db") as ledger:
        admission = await ledger.admit(spec, key, derive_job_id(key), "run1")
        assert admission.record is not None
        record = admission.record
        await ledger.transition(record, FileState.PRESIGNED, s3_key="inputs/x/a.wav")
    async with Ledger.open(tmp_path / "l.db") as ledger:
        found = ledger.lookup([key])[key]
        assert found.state is FileState.PRESIGNED
        assert found.s3_key == "inputs/x/a.wav"
        assert found.job_id == derive_job_id(key)


async def test_same_identity_twice_in_one_run_is_a_duplicate(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    key = file_key(spec)
    async with Ledger.open(tmp_path / "l.db") as ledger:
        first = await ledger.admit(spec, key, derive_job_id(key), "run1")
        second = await ledger.admit(spec, key, derive_job_id(key), "run1")
        again_next_run = await ledger.admit(spec, key, derive_job_id(key), "run2")
    assert first.record is not None
    assert second.record is None and second.refusal == "duplicate of an earlier row (m.csv:2)"
    assert again_next_run.record is not None and again_next_run.record.id == first.record.id


async def test_a_job_id_owned_by_another_file_is_refused(tmp_path: Path) -> None:
    one, two = make_spec(tmp_path, "a.wav"), make_spec(tmp_path, "b.wav")
    async with Ledger.open(tmp_path / "l.db") as ledger:
        assert (await ledger.admit(one, file_key(one), "mine", "r")).record is not None
        refused = await ledger.admit(two, file_key(two), "mine", "r")
    assert refused.record is None
    assert refused.refusal is not None and "job_id mine is already used by another file" in refused.refusal


async def test_settings_are_part_of_the_identity(tmp_path: Path) -> None:
    english, french = make_spec(tmp_path, language="en"), make_spec(tmp_path, language="fr")
    assert file_key(english) != file_key(french)
    assert derive_job_id(file_key(english)) != derive_job_id(file_key(french))


async def test_renew_keeps_history_and_changes_job_id(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    key = file_key(spec)
    async with Ledger.open(tmp_path / "l.db") as ledger:
        record = (await ledger.admit(spec, key, derive_job_id(key), "r")).record
        assert record is not None
        await ledger.transition(record, FileState.FAILED, error="boom", error_class="permanent")
        await ledger.set_job_status(record, "FAILED", "could not be decoded")
        await ledger.renew(record, derive_job_id(key, 1), "retry")
        assert record.state is FileState.PENDING and record.job_id == derive_job_id(key, 1)
        again = ledger.lookup([key])[key]
        assert (again.job_status, again.job_error, again.fetched_formats) == (None, None, None)
    conn = sqlite3.connect(tmp_path / "l.db")
    assert conn.execute("SELECT job_id, state FROM job_history").fetchall() == [
        (derive_job_id(key), "failed")
    ]


async def test_many_concurrent_writers_share_commits_and_all_land(tmp_path: Path) -> None:
    specs = [make_spec(tmp_path, f"f{i}.wav") for i in range(200)]
    async with Ledger.open(tmp_path / "l.db") as ledger:
        async with anyio.create_task_group() as tg:
            for spec in specs:
                tg.start_soon(ledger.admit, spec, file_key(spec), derive_job_id(file_key(spec)), "r")
        assert ledger.count_by_state() == {"pending": 200}


async def test_one_failing_write_does_not_undo_the_others(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    async with Ledger.open(tmp_path / "l.db") as ledger:
        record = (await ledger.admit(spec, file_key(spec), "jobone", "r")).record
        assert record is not None
        with pytest.raises(sqlite3.OperationalError):
            await ledger.transition(record, FileState.CREATED, no_such_column=1)
        await ledger.reject("r", Rejection("m.csv", 3, None, "file not found"))
        await ledger.flush()
        assert list(ledger.rejections("r")) == [("m.csv", 3, None, "file not found")]


async def test_ledger_file_is_owner_only_and_secrets_are_redacted(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    async with Ledger.open(tmp_path / "l.db") as ledger:
        record = (await ledger.admit(spec, file_key(spec), "jobone", "r")).record
        assert record is not None
        await ledger.transition(
            record, FileState.FAILED, error="PUT https://s3/x?X-Amz-Signature=abcdef123 failed"
        )
    assert stat.S_IMODE(os.stat(tmp_path / "l.db").st_mode) == 0o600
    raw = (
        (tmp_path / "l.db").read_bytes() + (tmp_path / "l.db-wal").read_bytes()
        if (tmp_path / "l.db-wal").exists()
        else (tmp_path / "l.db").read_bytes()
    )
    assert b"abcdef123" not in raw


async def test_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "l.db")
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(ConfigError, match="newer than this slng-bulk understands"):
        async with Ledger.open(tmp_path / "l.db"):
            pass


def test_second_lock_holder_is_refused_and_released_lock_is_free(tmp_path: Path) -> None:
    first = acquire_run_lock(tmp_path / "l.db")
    with pytest.raises(LockHeldError, match="another slng-bulk run is using the ledger"):
        acquire_run_lock(tmp_path / "l.db")
    first.release()
    acquire_run_lock(tmp_path / "l.db").release()


async def test_rejections_store_hostile_text_escaped(tmp_path: Path) -> None:
    hostile = Rejection("m\u202e.csv", 4, "/x/\udcff\u200bevil\n.wav", "bad\x1b[31m value")
    async with Ledger.open(tmp_path / "l.db") as ledger:
        await ledger.reject("r", hostile)
        await ledger.flush()
        [(source, line, path, reason)] = list(ledger.rejections("r"))
    assert (source, line) == ("m\\u202e.csv", 4)
    assert path == "/x/\\udcff\\u200bevil\\n.wav"
    assert reason == "bad\\x1b[31m value"
