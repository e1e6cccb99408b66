"""One file's history (`report --path/--job-id`) read through the ledger interface, on each backend.

The same test code runs on a SQLite file and on a PostgreSQL database, with the ledger open for
writing (and, for SQLite, its run lock held) while the history is read: the report only reads.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from pipeline.cli.report import history_lines
from pipeline.commands.report import file_history
from pipeline.errors import ErrorClass
from pipeline.ledger import FileRecord, HistoryKind, Ledger, acquire_run_lock, open_ledger, sqlite_path
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.rows import Rejection
from tests.ledger.conftest import make_spec
from tests.support.stored import set_status

pytestmark = pytest.mark.anyio

UNDECODABLE = "The audio file could not be decoded."


@asynccontextmanager
async def held(target: str) -> AsyncIterator[Ledger]:
    """The ledger open for writing, as during a run (for SQLite: with the run's lock taken)."""
    async with AsyncExitStack() as stack:
        path = sqlite_path(target)
        if path is not None:
            stack.callback(acquire_run_lock(path).release)
        yield await stack.enter_async_context(open_ledger(target))


async def admitted(ledger: Ledger, folder: Path, language: str) -> FileRecord:
    spec = make_spec(folder, "a.wav", language=language)
    key = file_key(spec)
    admission = await ledger.admit(spec, key, derive_job_id(key), "run-1")
    assert admission.record is not None, admission.refusal
    return admission.record


async def test_history_of_one_file_by_path_and_by_job_id_while_a_run_holds_the_ledger(
    ledger_target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    async with held(ledger_target) as ledger:
        record = await admitted(ledger, folder, "en")
        record = await ledger.mark_presigned(record, "inputs/a.wav", {})
        record = await ledger.mark_uploaded(record, "0" * 32)
        record = await ledger.mark_creating(record, attempts=2)
        record = await ledger.mark_created(record)
        record = await set_status(ledger, record, "FAILED", UNDECODABLE)
        old_job = record.job_id
        reason = f"job FAILED on the server: {UNDECODABLE}"
        renewed = await ledger.renew(
            record, derive_job_id(record.file_key, 1), HistoryKind.RETRY_FAILED, reason
        )
        other = await admitted(ledger, folder, "fr")  # the same file with other settings: another record
        other = await ledger.mark_presigned(other, "inputs/b.wav", {})
        other = await ledger.mark_failed(other, "PUT refused", ErrorClass.PERMANENT)
        await ledger.reject(
            "run-2", Rejection("m.csv", 3, str(folder / "a.wav"), "duplicate of an earlier row")
        )
        await ledger.reject("run-2", Rejection("m.csv", 4, str(folder / "b.wav"), "file is gone"))
        await ledger.flush()

        by_path = file_history(open_ledger(ledger_target), path="in/a.wav")  # as given, relative

        assert [f.job_id for f in by_path.files] == [renewed.job_id, other.job_id]
        first, second = by_path.files
        assert first.path == str(folder / "a.wav") and first.generation == 1 and first.state == "pending"
        assert first.job_status is None and first.attempts == 2
        assert [(j.job_id, j.state, j.reason) for j in first.jobs] == [(old_job, "created", reason)]
        assert first.jobs[0].replaced_at is not None and first.jobs[0].replaced_at.endswith("Z")
        assert first.times["admitted"] is not None and first.times["created"] is None  # cleared by the renew
        assert (
            second.state == "failed" and second.error == "PUT refused" and second.error_class == "permanent"
        )
        assert second.times["presigned"] is not None and second.times["uploaded"] is None
        assert second.jobs == []
        [rejected] = by_path.rejections
        assert (rejected.source, rejected.line, rejected.run_id) == ("m.csv", 3, "run-2")
        assert rejected.path == str(folder / "a.wav") and rejected.at is not None

        by_old_job = file_history(open_ledger(ledger_target), job_id=old_job)
        assert by_old_job == file_history(open_ledger(ledger_target), job_id=renewed.job_id)
        assert [f.job_id for f in by_old_job.files] == [renewed.job_id] and by_old_job.rejections == []
        assert file_history(open_ledger(ledger_target), path=str(folder / "a.wav")) == by_path  # absolute
        (tmp_path / "deep" / "er").mkdir(parents=True)
        (tmp_path / "link").symlink_to(tmp_path / "deep" / "er")
        # `..` folded as a shell (and the sources) do, not after following the link
        assert file_history(open_ledger(ledger_target), path="link/../in/a.wav") == by_path
        unknown_user = file_history(open_ledger(ledger_target), path="~no-such-user-here/a.wav")
        assert unknown_user.files == [] and unknown_user.rejections == []  # no match, no crash
        assert json.loads(json.dumps(by_path.document()))["files"][0]["jobs"][0]["job_id"] == old_job
        text = "\n".join(history_lines(by_path))
        assert old_job in text and renewed.job_id in text and "rejected" in text

        nothing = file_history(open_ledger(ledger_target), job_id="nope")
        assert nothing.files == [] and nothing.rejections == []
