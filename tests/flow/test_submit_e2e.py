"""End to end: every source kind through the real pipeline, over loopback, into the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.sandbox import FaultPlan, Sandbox
from tests.support.audio import make_tree, write_wav
from tests.support.runs import (
    assert_exactly_once,
    md5_of,
    objects_by_key,
    run_cli,
    run_submit,
    total_requests,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _isolated_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))


async def test_csv_manifest_creates_one_job_per_file_with_its_settings(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "audio", 6)
    manifest = tmp_path / "m.csv"
    lines = ["path,language,diarization,title,tags,metadata,srt_max_lines"]
    for i, f in enumerate(files):
        lines.append(
            f'{f.relative_to(tmp_path)},{"fr" if i % 2 else "en"},speaker,T{i},"a,b","{{""n"": {i}}}",2'
        )
    manifest.write_text("\n".join(lines) + "\n")

    stats = await run_submit(sandbox, [manifest], tmp_path / "l.db")

    assert (stats.created, stats.failed, stats.rejected) == (6, 0, 0)
    assert stats.exit_code() is ExitCode.OK
    assert_exactly_once(sandbox, files)
    jobs = {job.job_id: job for job in sandbox.jobs().jobs}
    languages = sorted((job.job_config or {})["transcription_config"]["language"] for job in jobs.values())
    assert languages == ["en", "en", "en", "fr", "fr", "fr"]
    some = next(iter(jobs.values()))
    assert (some.job_config or {})["tracking"]["tags"] == ["a", "b"]
    assert (some.job_config or {})["output_config"] == {"srt_overrides": {"max_lines": 2}}


async def test_jsonl_manifest_and_rerun_makes_zero_requests(sandbox: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "audio", 4)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(
            json.dumps(
                {
                    "path": str(f),
                    "transcription_config": {"language": "de"},
                    "metadata": {"i": i},
                    "tracking": {"title": f"t{i}"},
                }
            )
            + "\n"
            for i, f in enumerate(files)
        )
    )
    first = await run_submit(sandbox, [manifest], tmp_path / "l.db")
    assert first.created == 4
    before = total_requests(sandbox)

    rerun = await run_submit(sandbox, [manifest], tmp_path / "l.db")

    assert total_requests(sandbox) == before, "a rerun of a finished manifest must not call the API"
    assert (rerun.created, rerun.skipped_done, rerun.queued) == (0, 4, 0)
    assert rerun.nothing_to_do()
    assert_exactly_once(sandbox, files)


async def test_directory_source_walks_audio_only(sandbox: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "tree", 5)
    (tmp_path / "tree" / "notes.txt").write_text("not audio")
    write_wav(tmp_path / "tree" / ".hidden.wav")
    upper = write_wav(tmp_path / "tree" / "LOUD.WAV", freq=900.0)

    stats = await run_submit(sandbox, [tmp_path / "tree"], tmp_path / "l.db")

    assert (stats.created, stats.rejected) == (6, 0)
    assert_exactly_once(sandbox, [*files, upper])


async def test_same_file_with_other_settings_is_a_new_job(sandbox: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "a", 2)
    await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db", language="en")
    again = await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db", language="fr")
    assert again.created == 2
    assert len(sandbox.jobs().jobs) == 4
    assert len(objects_by_key(sandbox)) == 4  # each job has its own input object
    assert set(objects_by_key(sandbox).values()) == {md5_of(f) for f in files}


async def test_bad_rows_are_rejected_with_their_line_and_the_rest_go_through(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    good = make_tree(tmp_path / "ok", 3)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,diarization,job_id\n"
        f"{good[0]},,\n"
        "missing.wav,,\n"
        f"{tmp_path / 'empty.wav'},,\n"
        f"{tmp_path / 'notes.txt'},,\n"
        f"{good[1]},loud,\n"
        f"{good[1]},,bad-id\n"
        f"{good[1]},,\n"
        f"{good[2]},,\n"
        f"{good[2]},,\n"  # a duplicate of the line before
    )
    stats = await run_submit(sandbox, [manifest], tmp_path / "l.db")
    assert stats.created == 3
    assert stats.rejected == 6
    assert stats.exit_code() is ExitCode.REJECTED
    assert_exactly_once(sandbox, good)

    from pipeline.ledger import SqliteLedger

    reasons = {line: reason for _src, line, _path, reason in SqliteLedger(tmp_path / "l.db").rejections()}
    assert set(reasons) == {3, 4, 5, 6, 7, 10}
    assert "not found" in reasons[3]
    assert "empty" in reasons[4]
    assert "extension" in reasons[5]
    assert "diarization" in reasons[6]
    assert "job_id" in reasons[7]
    assert "duplicate of an earlier row" in reasons[10]


async def test_lost_create_response_does_not_duplicate_the_job(sandbox: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "a", 4)
    sandbox.set_faults(
        FaultPlan.model_validate({"operations": {"create": {"lost_response": {"nth": [1, 3]}}}})
    )

    stats = await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db")

    assert stats.created + stats.already_created == 4 and stats.failed == 0
    assert stats.already_created == 2  # the two lost responses were resolved by asking, not resending
    assert_exactly_once(sandbox, files)
    lost = [a for a in sandbox.jobs().attempts if a.response_lost]
    assert len(lost) == 2 and all(a.created for a in lost)


async def test_put_is_rejected_by_sandbox_s3_when_streamed_without_length(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Control: the strict S3 refuses a chunked PUT, so the pipeline's success above proves it sends
    Content-Length and exactly the signed headers."""
    import aiohttp

    from pipeline.api.client import SlngClient
    from pipeline.api.models import PresignRequest, TranscriptionConfig
    from pipeline.transport.rates import RateControl

    async with aiohttp.ClientSession() as session:
        client = SlngClient(session, sandbox.api_url, sandbox.api_key, RateControl.from_limits(10, 10, 10))
        presigned = await client.presign(
            PresignRequest(filename="x.wav", job_id="controljob", transcription_config=TranscriptionConfig())
        )

        async def body():  # type: ignore[no-untyped-def]
            yield b"RIFF"

        headers = dict(presigned.upload.headers or {})
        async with session.put(presigned.upload.url, data=body(), headers=headers) as response:
            assert response.status in (411, 501)
        async with session.put(
            presigned.upload.url, data=b"RIFF", headers={**headers, "x-amz-meta-a": "1"}
        ) as r:
            assert r.status == 403
        async with session.put(
            presigned.upload.url, data=b"RIFF", headers={"Content-Type": "audio/wav"}
        ) as r:
            assert r.status == 403


def test_cli_stdin_paths_and_exit_codes(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "in", 3)
    env = {
        "SLNG_API_KEY": sandbox_thread.api_key,
        "SLNG_BULK_API_URL": sandbox_thread.api_url,
        "SLNG_BULK_LEDGER": str(tmp_path / "l.db"),
    }
    stdin = "\n".join(str(f) for f in files) + "\n" + str(tmp_path / "nope.wav") + "\n"

    result = run_cli(
        "submit", "-", "--summary-json", str(tmp_path / "s.json"), env=env, stdin=stdin, cwd=tmp_path
    )

    assert result.returncode == ExitCode.REJECTED, result.stderr
    assert "Traceback" not in result.stderr
    assert "-:4: " in result.stderr and "not found" in result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["counts"]["created"] == 3 and summary["counts"]["rejected"] == 1
    assert_exactly_once(sandbox_thread, files)

    again = run_cli(
        "submit", "-", "--error-on-nothing", env=env, stdin="\n".join(map(str, files)), cwd=tmp_path
    )
    assert again.returncode == ExitCode.NOTHING_TO_DO, again.stderr
    assert "nothing to do" in again.stderr


@pytest.mark.slow
def test_cli_usage_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,colour\na.wav,red\n")
    result = run_cli("submit", str(tmp_path / "m.csv"), env={"SLNG_API_KEY": "k"}, cwd=tmp_path)
    assert result.returncode == ExitCode.CONFIG
    assert "colour" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("submit", str(tmp_path / "m.csv"), "--concurrency", "0", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE and "concurrency" in result.stderr
    result = run_cli("submit", str(tmp_path / "nothere.csv"), env={"SLNG_API_KEY": "k"}, cwd=tmp_path)
    assert result.returncode == ExitCode.CONFIG and "nothere.csv" in result.stderr
    no_key = make_tree(tmp_path / "d", 1)[0].parent
    result = run_cli("submit", str(no_key), cwd=tmp_path)
    assert result.returncode == ExitCode.CONFIG and "SLNG_API_KEY" in result.stderr


def test_cli_wrong_key_is_an_auth_failure(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 20)
    env = {"SLNG_API_KEY": "sk-wrong-key-123", "SLNG_BULK_API_URL": sandbox_thread.api_url}
    result = run_cli(
        "submit", str(tmp_path / "in"), "--ledger", str(tmp_path / "l.db"), env=env, cwd=tmp_path
    )
    assert result.returncode == ExitCode.AUTH, result.stderr
    assert "refused the key" in result.stderr and "sk-wrong-key-123" not in result.stderr
    presigns = sandbox_thread.stats().requests["presign"].total
    assert presigns <= 8, "workers must stop after the first 403 (only those already in flight may land)"


async def test_extra_transcription_keys_pass_through_as_given(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Options the models do not name reach the service unchanged, from a CSV cell and a JSONL key."""
    csv_file, jsonl_file, clash = make_tree(tmp_path / "audio", 3)
    identify = {"language_identification": {"expected_languages": ["en", "fr"]}}
    translate = {"translation_config": {"target_languages": ["de"]}, "summarization": True}
    manifest = tmp_path / "m.csv"
    cell = json.dumps(identify).replace('"', '""')
    manifest.write_text(f'path,language,extra\n{csv_file},en,"{cell}"\n{clash},,"{{""language"": ""fr""}}"\n')
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(json.dumps({"path": str(jsonl_file), "extra": translate}) + "\n")

    stats = await run_submit(sandbox, [manifest, jsonl], tmp_path / "l.db")

    assert (stats.created, stats.rejected) == (2, 1)
    configs = [(job.job_config or {})["transcription_config"] for job in sandbox.jobs().jobs]
    assert any(c.get("language_identification") == identify["language_identification"] for c in configs)
    assert any(
        c.get("translation_config") == {"target_languages": ["de"]} and c.get("summarization") is True
        for c in configs
    )
    assert all(c["language"] for c in configs)  # the named fields are still there beside the extras
    assert f"m.csv:3: {clash}: extra: language is a named setting" in caplog.text


async def test_extra_default_from_the_settings_merges_under_a_rows_own(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    plain, own = make_tree(tmp_path / "audio", 2)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'path,extra\n{plain},\n{own},"{{""summarization"": false, ""topics"": true}}"\n')

    stats = await run_submit(sandbox, [manifest], tmp_path / "l.db", extra='{"summarization": true}')

    assert stats.created == 2
    configs = sorted(((job.job_config or {})["transcription_config"] for job in sandbox.jobs().jobs), key=len)
    assert configs[0]["summarization"] is True and "topics" not in configs[0]
    assert configs[1]["summarization"] is False and configs[1]["topics"] is True
