"""What every ledger backend promises (pipeline.ledger.base): admission, typed transitions that
return new records, durability across reopen, renewals kept in a typed history, the server's view."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from pipeline.errors import ErrorClass
from pipeline.ledger import CHANGED, FileRecord, FileState, HistoryKind, Ledger
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.rows import Rejection
from tests.ledger.conftest import LedgerFactory, make_spec
from tests.support.stored import records_by_key, set_status

pytestmark = pytest.mark.anyio


async def admitted(ledger: Ledger, folder: Path, name: str = "a.wav", run_id: str = "r") -> FileRecord:
    spec = make_spec(folder, name)
    key = file_key(spec)
    admission = await ledger.admit(spec, key, derive_job_id(key), run_id)
    assert admission.record is not None, admission.refusal
    return admission.record


async def test_admit_records_before_any_remote_step_and_survives_reopen(
    ledger_factory: LedgerFactory, tmp_path: Path
) -> None:
    async with ledger_factory() as ledger:
        record = await admitted(ledger, tmp_path)
        assert record.state is FileState.PENDING
        await ledger.mark_presigned(record, "inputs/x/a.wav", {"tracking": {"a": 1}})
    async with ledger_factory() as ledger:
        found = records_by_key(ledger, [record.file_key])[record.file_key]
    assert found.state is FileState.PRESIGNED
    assert found.s3_key == "inputs/x/a.wav"
    assert found.echo == {"tracking": {"a": 1}}
    assert found.job_id == derive_job_id(record.file_key)


async def test_a_glance_says_what_a_failure_said_for_the_rerun_to_report_it(
    ledger: Ledger, tmp_path: Path
) -> None:
    """One batched read answers "which of these failed before, with what" (no query per file)."""
    failed = await admitted(ledger, tmp_path, "a.wav")
    await ledger.mark_failed(failed, "HTTP 422: bad audio", ErrorClass.PERMANENT)
    job = await ledger.mark_created(await admitted(ledger, tmp_path, "b.wav"))
    await set_status(ledger, job, "FAILED", "could not decode audio")
    done = await ledger.mark_created(await admitted(ledger, tmp_path, "c.wav"))
    await set_status(ledger, done, "DONE", None)
    await ledger.flush()
    seen = ledger.glance([failed.file_key, job.file_key, done.file_key])
    assert seen[failed.file_key][3:5] == ("HTTP 422: bad audio", None)
    assert seen[job.file_key][3:5] == ("could not decode audio", "FAILED")
    assert seen[done.file_key][3:5] == (None, "DONE")
    assert seen[done.file_key].settings_hash == done.settings_hash  # a label changed since? compared


async def test_same_identity_twice_in_one_run_is_a_duplicate(ledger: Ledger, tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    key = file_key(spec)
    first = await ledger.admit(spec, key, derive_job_id(key), "run1")
    second = await ledger.admit(spec, key, derive_job_id(key), "run1")
    again_next_run = await ledger.admit(spec, key, derive_job_id(key), "run2")
    assert first.record is not None
    assert second.record is None and second.refusal == "duplicate of an earlier row (m.csv:2)"
    assert again_next_run.record is not None and again_next_run.record.id == first.record.id
    assert again_next_run.record.seen_run == "run2"


async def test_a_job_id_owned_by_another_file_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    one, two = make_spec(tmp_path, "a.wav"), make_spec(tmp_path, "b.wav")
    assert (await ledger.admit(one, file_key(one), "mine", "r")).record is not None
    refused = await ledger.admit(two, file_key(two), "mine", "r")
    assert refused.record is None
    assert refused.refusal is not None and "job_id mine is already used by another file" in refused.refusal


async def test_settings_are_part_of_the_identity(tmp_path: Path) -> None:
    english, french = make_spec(tmp_path, language="en"), make_spec(tmp_path, language="fr")
    assert file_key(english) != file_key(french)
    assert derive_job_id(file_key(english)) != derive_job_id(file_key(french))


async def test_each_transition_returns_a_new_record_and_leaves_the_callers_alone(
    ledger: Ledger, tmp_path: Path
) -> None:
    pending = await admitted(ledger, tmp_path)
    counted = await ledger.count_attempt(pending)
    presigned = await ledger.mark_presigned(counted, "inputs/j/a.wav", {})
    uploaded = await ledger.mark_uploaded(presigned, "0123abcd")
    creating = await ledger.mark_creating(uploaded, attempts=2)
    created = await ledger.mark_created(creating)
    assert (pending.state, pending.attempts, pending.s3_key) == (FileState.PENDING, 0, None)
    assert (counted.attempts, presigned.state, presigned.s3_key) == (1, FileState.PRESIGNED, "inputs/j/a.wav")
    assert (uploaded.state, uploaded.md5) == (FileState.UPLOADED, "0123abcd")
    assert (creating.state, creating.attempts) == (FileState.CREATING, 2)
    assert created.state is FileState.CREATED and created.created_at is not None
    with pytest.raises(AttributeError):
        created.state = FileState.PENDING  # type: ignore[misc]
    await ledger.flush()
    stored = records_by_key(ledger, [pending.file_key])[pending.file_key]
    assert (stored.state, stored.attempts, stored.md5) == (FileState.CREATED, 2, "0123abcd")


async def test_a_presign_counts_its_attempt_in_the_presigned_write(ledger: Ledger, tmp_path: Path) -> None:
    record = await admitted(ledger, tmp_path)
    presigned = await ledger.mark_presigned(record, "inputs/j/a.wav", {}, attempts=record.attempts + 1)
    again = await ledger.mark_presigned(presigned, "inputs/j/a.wav", {})  # no count given: kept
    assert (record.attempts, presigned.attempts, again.attempts) == (0, 1, 1)
    await ledger.flush()
    stored = records_by_key(ledger, [record.file_key])[record.file_key]
    assert (stored.state, stored.attempts) == (FileState.PRESIGNED, 1)


async def test_failures_keep_their_class_and_a_failed_file_starts_over(
    ledger: Ledger, tmp_path: Path
) -> None:
    record = await admitted(ledger, tmp_path)
    failed = await ledger.mark_failed(record, "HTTP 422: bad audio", ErrorClass.PERMANENT)
    await ledger.flush()
    glance = ledger.glance([record.file_key])[record.file_key]
    assert (glance.state, glance.error_class) == (FileState.FAILED, ErrorClass.PERMANENT)
    again = await ledger.mark_pending(failed)
    assert (again.state, again.error, again.error_class) == (FileState.PENDING, None, None)
    changed = await ledger.mark_changed(again, "a.wav changed while it was uploaded")
    await ledger.flush()
    stored = records_by_key(ledger, [record.file_key])[record.file_key]
    assert (stored.state, stored.error_class, stored.error) == (
        FileState.FAILED,
        CHANGED,
        "a.wav changed while it was uploaded",
    )
    assert changed == stored


async def test_errors_are_stored_redacted_on_one_line(ledger: Ledger, tmp_path: Path) -> None:
    record = await admitted(ledger, tmp_path)
    failed = await ledger.mark_failed(
        record, "PUT https://s3/x?X-Amz-Signature=abcdef123 failed\nnext line", ErrorClass.TRANSIENT
    )
    assert failed.error is not None and "abcdef123" not in failed.error and "\n" not in failed.error
    await ledger.flush()
    assert records_by_key(ledger, [record.file_key])[record.file_key].error == failed.error


async def test_renew_keeps_a_typed_history_and_changes_job_id(ledger: Ledger, tmp_path: Path) -> None:
    record = await admitted(ledger, tmp_path)
    old_job = record.job_id
    record = await ledger.mark_failed(record, "boom", ErrorClass.PERMANENT)
    record = await set_status(ledger, record, "FAILED", "could not be decoded")
    assert (record.job_status, record.job_error) == ("FAILED", "could not be decoded")
    renewed = await ledger.renew(record, derive_job_id(record.file_key, 1), HistoryKind.RETRY_FAILED, "retry")
    assert renewed.state is FileState.PENDING and renewed.job_id == derive_job_id(record.file_key, 1)
    assert renewed.generation == 1 and record.generation == 0 and record.job_id == old_job
    again = records_by_key(ledger, [record.file_key])[record.file_key]
    assert (again.job_status, again.job_error, again.fetched_formats) == (None, None, None)
    assert again.transcripts is None  # a new job has no transcripts yet
    assert again == renewed
    assert ledger.history_job_ids() == {old_job}


async def test_a_files_story_has_its_record_step_times_and_typed_earlier_jobs(
    ledger: Ledger, tmp_path: Path
) -> None:
    record = await ledger.mark_presigned(await admitted(ledger, tmp_path), "inputs/a.wav", {})
    first = await ledger.renew(record, "second-job", HistoryKind.FORCED, "resubmitted (--force)")
    adopted = await ledger.adopt_job(first, "third-job", 2, "reconcile: a later job")
    await ledger.reject("r2", Rejection("m.csv", 3, record.path, "duplicate of an earlier row"))
    await ledger.flush()
    [story] = ledger.stories_at([record.path, "/elsewhere/a.wav"])
    assert story.record == adopted and ledger.stories_of_job(record.job_id) == [story]
    assert ledger.stories_of_job("third-job") == [story] and ledger.stories_of_job("nope") == []
    assert [(j.job_id, j.state, j.kind, j.reason) for j in story.replaced] == [
        (record.job_id, "presigned", HistoryKind.FORCED, "resubmitted (--force)"),
        ("second-job", "pending", HistoryKind.RECONCILED, "reconcile: a later job"),
    ]
    times = story.times
    assert times.admitted is not None and times.created is not None and times.updated is not None
    assert times.presigned is None and times.fetched is None  # the renewal cleared the first job's steps
    [rejected] = ledger.rejections_at([record.path])
    assert (rejected.run_id, rejected.line, rejected.reason) == ("r2", 3, "duplicate of an earlier row")
    assert rejected.path == record.path and ledger.rejections_at(["/elsewhere"]) == []


async def test_renewed_not_created_is_chosen_by_kind_not_by_reason_text(
    ledger: Ledger, tmp_path: Path
) -> None:
    retried = await admitted(ledger, tmp_path, "a.wav")
    forced = await admitted(ledger, tmp_path, "b.wav")
    finished = await admitted(ledger, tmp_path, "c.wav")
    # Reasons are for people: a misleading one must not change what the code picks.
    retried = await ledger.renew(retried, "new-a", HistoryKind.RETRY_FAILED, "resubmitted (--force)")
    await ledger.renew(forced, "new-b", HistoryKind.FORCED, "job FAILED on the server: x")
    finished = await ledger.renew(finished, "new-c", HistoryKind.RETRY_FAILED, "job FAILED on the server")
    await ledger.mark_created(finished)
    await ledger.flush()
    assert [r.job_id for r in ledger.renewed_not_created(HistoryKind.RETRY_FAILED)] == ["new-a"]
    assert [r.job_id for r in ledger.renewed_not_created(HistoryKind.FORCED)] == ["new-b"]
    assert ledger.renewed_not_created(HistoryKind.RECONCILED) == []


async def test_adopt_job_points_at_a_later_job_and_keeps_the_old_one(ledger: Ledger, tmp_path: Path) -> None:
    record = await admitted(ledger, tmp_path)
    adopted = await ledger.adopt_job(record, "later-job", 2, "reconcile: a later job is on the server")
    assert (adopted.job_id, adopted.generation, adopted.state) == ("later-job", 2, FileState.CREATED)
    assert ledger.history_job_ids() == {record.job_id}
    assert records_by_key(ledger, [record.file_key])[record.file_key] == adopted
    assert ledger.renewed_not_created(HistoryKind.RECONCILED) == []  # adopted jobs exist


async def test_the_servers_view_is_recorded(ledger: Ledger, tmp_path: Path) -> None:
    one = await ledger.mark_created(await admitted(ledger, tmp_path, "a.wav"))
    two = await ledger.mark_created(await admitted(ledger, tmp_path, "b.wav"))
    one, two = await ledger.set_job_statuses([(one, "DONE", None), (two, "FAILED", "bad audio")])
    assert (one.job_status, two.job_status, two.job_error) == ("DONE", "FAILED", "bad audio")
    one = await ledger.set_fetched(one, "json,srt", ["/out/a.wav.json", "/out/a.wav.srt"])
    one = await ledger.set_server_deleted(one)
    stored = {r.relative_path: r for r in ledger.records([FileState.CREATED.value])}
    assert (stored["a.wav"].fetched_formats, stored["a.wav"].job_status) == ("json,srt", "DELETED")
    assert stored["a.wav"].transcript_paths == ["/out/a.wav.json", "/out/a.wav.srt"]
    assert (stored["b.wav"].job_status, stored["b.wav"].job_error) == ("FAILED", "bad audio")
    assert stored["a.wav"] == one
    assert await ledger.set_job_statuses([]) == []


async def test_many_concurrent_writers_share_commits_and_all_land(ledger: Ledger, tmp_path: Path) -> None:
    specs = [make_spec(tmp_path, f"f{i}.wav") for i in range(200)]
    async with anyio.create_task_group() as tg:
        for spec in specs:
            tg.start_soon(ledger.admit, spec, file_key(spec), derive_job_id(file_key(spec)), "r")
    await ledger.flush()  # admission is applied, not necessarily committed: reads see it after a flush
    assert ledger.count_by_state() == {"pending": 200}
    assert [r.relative_path for r in ledger.records()] != []
    assert len(ledger.glance([file_key(s) for s in specs])) == 200


async def test_records_filter_by_state_in_admission_order(ledger: Ledger, tmp_path: Path) -> None:
    first = await admitted(ledger, tmp_path, "a.wav")
    await admitted(ledger, tmp_path, "b.wav")
    third = await admitted(ledger, tmp_path, "c.wav")
    await ledger.mark_created(first)
    await ledger.mark_created(third)
    await ledger.flush()
    assert [r.relative_path for r in ledger.records([FileState.CREATED.value])] == ["a.wav", "c.wav"]
    assert [r.relative_path for r in ledger.records()] == ["a.wav", "b.wav", "c.wav"]
    assert ledger.count_by_state() == {"created": 2, "pending": 1}


async def test_runs_and_rejections_are_kept(ledger: Ledger) -> None:
    await ledger.start_run("r1")
    await ledger.reject("r1", Rejection("m.csv", 3, None, "file not found"))
    await ledger.reject("r2", Rejection("m.csv", 4, "/x.wav", "not audio"))
    await ledger.finish_run("r1", {"created": 0})
    assert list(ledger.rejections("r1")) == [("m.csv", 3, None, "file not found")]
    assert [r.reason for r in ledger.rejections()] == ["file not found", "not audio"]


async def test_rejections_store_hostile_text_escaped(ledger: Ledger) -> None:
    hostile = Rejection("m\u202e.csv", 4, "/x/\udcff\u200bevil\n.wav", "bad\x1b[31m value")
    await ledger.reject("r", hostile)
    await ledger.flush()
    [(source, line, path, reason)] = list(ledger.rejections("r"))
    assert (source, line) == ("m\\u202e.csv", 4)
    assert path == "/x/\\udcff\\u200bevil\\n.wav"
    assert reason == "bad\\x1b[31m value"
