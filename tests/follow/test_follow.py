"""Follow-through end to end against the sandbox: status, --wait, fetch, retry-failed, reconcile,
--delete-after-fetch; plus the path-safety rules of transcript names and the CLI's exit codes."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from pipeline import load_settings, submit
from pipeline.commands.connect import Connection, connect
from pipeline.commands.reconcile import admit_sources
from pipeline.commands.retry_failed import resubmit_failed
from pipeline.config.settings import Settings
from pipeline.errors import ConfigError, ExitCode, TransferError
from pipeline.follow.downloads import FetchReport, check_formats, fetch_transcripts, transcript_path
from pipeline.follow.matching import reconcile
from pipeline.follow.refresh import StatusReport, refresh_statuses
from pipeline.ledger import FileRecord, FileState, HistoryKind, SqliteLedger
from pipeline.observe.stats import summary_lines
from pipeline.sandbox import FaultPlan, Sandbox, SandboxConfig
from tests.support.audio import make_tree, write_wav
from tests.support.hostile import HostileServer
from tests.support.runs import run_cli, run_submit, settings_for, successful_creates

pytestmark = pytest.mark.anyio

UNDECODABLE = "The audio file could not be decoded."


@pytest.fixture(autouse=True)
def _isolated_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))


def hostile_settings(server: HostileServer, ledger: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"api_url": server.base_url, "api_key": server.api_key, "ledger": ledger}
    return load_settings(progress="none", **values, **overrides)


async def fetch_with(settings: Settings, out: Path) -> FetchReport:
    async with connect(settings) as conn:
        await refresh_statuses(conn.ledger, conn.client, conn.policy)
        return await fetch_transcripts(
            conn.ledger, conn.client, conn.session, out, ["json", "txt", "srt"], conn.policy
        )


@asynccontextmanager
async def opened(sb: Sandbox, ledger: Path, **overrides: Any) -> AsyncIterator[Connection]:
    async with connect(settings_for(sb, ledger, **overrides)) as conn:
        yield conn


async def fetch(sb: Sandbox, ledger: Path, out: Path, **kwargs: Any) -> FetchReport:
    async with opened(sb, ledger) as conn:
        return await fetch_transcripts(
            conn.ledger, conn.client, conn.session, out, ["json", "txt", "srt"], conn.policy, **kwargs
        )


def garbage_wav(path: Path) -> Path:
    """A .wav name over bytes that are no audio container at all: the sandbox's job ends FAILED."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not audio, just text pretending\n" * 50)
    return path


def records(ledger: Path) -> list[FileRecord]:
    return list(SqliteLedger(ledger).records())


def history(ledger: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(ledger) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT job_id, error FROM job_history ORDER BY id")]


def requests(sb: Sandbox, op: str) -> int:
    found = sb.stats().requests.get(op)
    return found.total if found else 0


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def read(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8")


def named_like(root: Path, pattern: str) -> list[Path]:
    return list(root.rglob(pattern))


def lose(ledger: Path) -> None:
    """The ledger is gone (deleted, or a fresh machine): with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)


def srt_blocks(text: str) -> list[list[str]]:
    return [block.splitlines() for block in text.strip().split("\n\n")]


# --- transcript names: never outside OUT ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("a/b.wav", "a/b.wav.json"),
        ("b.wav", "b.wav.json"),
        ("/etc/passwd", "etc/passwd.json"),  # absolute: re-rooted under OUT
        ("//x//y.wav", "x/y.wav.json"),
        ("./a/./b.wav", "a/b.wav.json"),
        ("a/..b/c..wav", "a/..b/c..wav.json"),  # dots inside names are just names
    ],
)
def test_transcript_path_maps_relative_paths_under_out(tmp_path: Path, relative: str, expected: str) -> None:
    out = tmp_path / "out"
    assert transcript_path(out, relative, "json") == out.resolve() / expected


@pytest.mark.parametrize("relative", ["../x.wav", "a/../../x.wav", "a/..", "..", "", ".", "/", "a/\0b.wav"])
def test_transcript_path_refuses_traversal(tmp_path: Path, relative: str) -> None:
    with pytest.raises(TransferError, match="refusing"):
        transcript_path(tmp_path / "out", relative, "json")


@pytest.mark.parametrize("fmt", ["../../evil", "json/../../x", "/etc/passwd", "", "JSON ", "pdf", "json\0"])
def test_transcript_path_refuses_a_hostile_format(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(TransferError, match="format"):
        transcript_path(tmp_path / "out", "a.wav", fmt)


def test_transcript_path_refuses_a_symlinked_folder_leading_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TransferError, match="outside"):
        transcript_path(out, "link/a.wav", "txt")


def test_transcript_path_variant_and_format_checks(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert transcript_path(out, "a.wav", "srt", "sb123").name == "a.wav.sb123.srt"
    with pytest.raises(TransferError):
        transcript_path(out, "a.wav", "srt", "../x")
    assert check_formats(["json", " TXT", "json"]) == ["json", "txt"]
    with pytest.raises(ConfigError, match="pdf"):
        check_formats(["json", "pdf"])
    with pytest.raises(ConfigError):
        check_formats([])


# --- submit --wait --out -------------------------------------------------------------------------------


@pytest.mark.slow
async def test_submit_wait_fetches_transcripts_into_the_source_tree(sandbox: Sandbox, tmp_path: Path) -> None:
    # 30 s of audio: the synthetic transcript then has at least 24 words (each takes at most 1.2 s),
    # more than one 24-character SRT line can hold, whatever the job_id seeds. 3 s sometimes gave
    # a single cue, and the "more than one block" check below failed by chance.
    files = make_tree(tmp_path / "audio", 4, seconds=30.0)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,srt_max_lines,srt_max_line_length\n"
        + "".join(f"{f.relative_to(tmp_path)},1,24\n" for f in files)
    )
    out = tmp_path / "out"

    stats = await run_submit(sandbox, [manifest], tmp_path / "l.db", wait=True, out=out)

    assert stats.exit_code() is ExitCode.OK, list(summary_lines(stats))
    assert stats.job_statuses == {"DONE": 4}
    assert stats.transcripts_written == 12 and not stats.fetch_errors
    expected = {out / f"{f.relative_to(tmp_path)}.{fmt}" for f in files for fmt in ("json", "txt", "srt")}
    assert files_under(out) == expected  # exactly the tree, no temporary files left
    for f in files:
        stem = out / f.relative_to(tmp_path)
        doc = json.loads(read(f"{stem}.json"))
        assert doc["results"] and {"type", "start_time", "end_time"} <= set(doc["results"][0])
        assert read(f"{stem}.txt").strip()
        blocks = srt_blocks(read(f"{stem}.srt"))
        assert len(blocks) > 1
        for block in blocks:
            number, timing, *text = block
            assert number.isdigit() and " --> " in timing
            assert len(text) == 1, block  # srt_overrides.max_lines = 1
            assert all(len(line) <= 24 for line in text)
    assert all(r.fetched_formats == "json,srt,txt" for r in records(tmp_path / "l.db"))


async def test_wait_timeout_stops_waiting_and_says_so(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 2)
    async with Sandbox(SandboxConfig(job_step_seconds=60)).run() as slow:
        stats = await run_submit(slow, [tmp_path / "in"], tmp_path / "l.db", wait=True, wait_timeout=0.5)
    assert stats.created == 2 and stats.job_statuses == {"QUEUED": 2}
    assert stats.interrupted is not None and "--wait-timeout" in stats.interrupted
    assert stats.exit_code() is ExitCode.INTERRUPTED


def test_unknown_and_post_processing_statuses_count_as_open() -> None:
    report = StatusReport(by_status=Counter({"DONE": 1, "POST_PROCESSING": 2, "SOMETHING_NEW": 3}))
    assert report.open_jobs == 5
    report.by_status["NOT_FOUND"] = 4  # a 404 is reported, not waited for
    assert report.open_jobs == 5


@pytest.mark.slow
async def test_two_jobs_of_one_relative_path_do_not_overwrite_each_other(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    audio = write_wav(tmp_path / "in" / "a.wav")
    ledger = tmp_path / "l.db"
    await run_submit(sandbox, [tmp_path / "in"], ledger, language="en", wait=True)
    await run_submit(sandbox, [tmp_path / "in"], ledger, language="fr", wait=True)
    first, second = records(ledger)

    report = await fetch(sandbox, ledger, tmp_path / "out")

    assert report.written == 6 and report.errors == []
    names = {p.name for p in files_under(tmp_path / "out")}
    assert names == {f"{audio.name}.{f}" for f in ("json", "txt", "srt")} | {
        f"{audio.name}.{second.job_id}.{f}" for f in ("json", "txt", "srt")
    }
    languages = {
        json.loads(read(tmp_path / "out" / name))["metadata"]["transcription_config"]["language"]
        for name in (f"{audio.name}.json", f"{audio.name}.{second.job_id}.json")
    }
    assert languages == {"en", "fr"}
    assert first.job_id != second.job_id


# --- FAILED jobs: status, the --wait summary, retry-failed ---------------------------------------------


@pytest.mark.slow
async def test_failed_job_is_reported_and_retry_failed_resubmits_it(sandbox: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 2)
    bad = garbage_wav(tmp_path / "in" / "broken.wav")
    ledger = tmp_path / "l.db"

    stats = await run_submit(sandbox, [tmp_path / "in"], ledger, wait=True)

    assert stats.created == 3 and stats.failed == 0  # the upload and create themselves succeeded
    assert stats.job_statuses == {"DONE": 2, "FAILED": 1}
    assert len(stats.jobs_failed) == 1 and str(bad) in stats.jobs_failed[0]
    assert UNDECODABLE in stats.jobs_failed[0]
    assert stats.exit_code() is ExitCode.FAILED
    assert any("JOB FAILED" in line and UNDECODABLE in line for line in summary_lines(stats))
    old = next(r for r in records(ledger) if r.path == str(bad))
    assert (old.job_status, old.job_error) == ("FAILED", UNDECODABLE)

    async with opened(sandbox, ledger) as conn:
        report = await refresh_statuses(conn.ledger, conn.client, conn.policy)
    assert report.failed_jobs == [(str(bad), old.job_id, UNDECODABLE)]

    again = await resubmit_failed(settings_for(sandbox, ledger))

    assert (again.queued, again.created, again.failed) == (1, 1, 0)
    new = next(r for r in records(ledger) if r.path == str(bad))
    assert new.job_id != old.job_id and new.generation == 1 and new.state is FileState.CREATED
    assert new.job_status is None and new.job_error is None  # the new job's status is not the old one's
    assert history(ledger) == [(old.job_id, f"job FAILED on the server: {UNDECODABLE}")]
    assert {old.job_id, new.job_id} <= {job.job_id for job in sandbox.jobs().jobs}
    creates = successful_creates(sandbox)
    assert len(creates) == len(set(creates)) == 4

    # The new job fails too (same bytes); status sees the new job, retry-failed would go on from there.
    await anyio.sleep(0.3)
    async with opened(sandbox, ledger) as conn:
        report = await refresh_statuses(conn.ledger, conn.client, conn.policy)
    assert report.failed_jobs == [(str(bad), new.job_id, UNDECODABLE)]


async def test_retry_failed_after_an_interrupted_renew_picks_the_file_up(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A renew that was recorded but whose job was never created (crash in between) is not lost."""
    bad = garbage_wav(tmp_path / "in" / "broken.wav")
    ledger = tmp_path / "l.db"
    await run_submit(sandbox, [tmp_path / "in"], ledger, wait=True)
    async with SqliteLedger(ledger) as led:  # what retry-failed records before it creates anything
        record = next(iter(led.records()))
        reason = f"job FAILED on the server: {UNDECODABLE}"
        await led.renew(record, "sbrenewedbutnotcreated0", HistoryKind.RETRY_FAILED, reason)

    again = await resubmit_failed(settings_for(sandbox, ledger))

    assert (again.queued, again.created) == (1, 1)
    assert "sbrenewedbutnotcreated0" in {job.job_id for job in sandbox.jobs().jobs}
    assert records(ledger)[0].path == str(bad)


# --- fetch: expired URLs, hostile names, missing formats, interruption, delete -------------------------


@pytest.mark.slow
async def test_expired_download_url_is_refreshed_from_files(sandbox: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 1)
    ledger = tmp_path / "l.db"
    await run_submit(sandbox, [tmp_path / "in"], ledger, wait=True)
    # Download URLs live 2 s, and the first download is served 3.2 s late: past its URL's expiry.
    sandbox.set_faults(
        FaultPlan.model_validate(
            {
                "short_expiry": {"expires_in": 2, "applies_to": ["files"]},
                "operations": {"download": {"latency": {"fixed_ms": 3200, "nth": [1]}}},
            }
        )
    )

    report = await fetch(sandbox, ledger, tmp_path / "out")

    assert report.errors == [] and report.written == 3
    assert report.fresh_urls == 1
    assert requests(sandbox, "files") == 2
    assert sandbox.stats().requests["download"].by_status == {"403": 1, "200": 3}
    assert sandbox.stats().injected_by_operation["files"]["short_expiry"] == 2
    assert len(files_under(tmp_path / "out")) == 3


async def test_hostile_output_names_from_the_server_cannot_escape(tmp_path: Path) -> None:
    (tmp_path / "work" / "m").mkdir(parents=True)
    audio = write_wav(tmp_path / "work" / "outside" / "a.wav")
    manifest = tmp_path / "work" / "m" / "m.csv"
    manifest.write_text("path\n../outside/a.wav\n")  # the manifest path climbs out of its folder
    ledger = tmp_path / "l.db"
    out = tmp_path / "work" / "m" / "out"
    # /files lists two outputs whose format and key climb out of OUT, before the real ones.
    with HostileServer(job_status="DONE", files="evil_formats").run_in_thread() as server:
        await submit([str(manifest)], hostile_settings(server, ledger, wait=True))
        work = tmp_path / "work"  # the ledger (and its WAL, which comes and goes) lives outside it
        before = files_under(work)

        report = await fetch_with(hostile_settings(server, ledger), out)

    assert report.errors == [] and report.written == 3
    written = files_under(out)
    assert len(written) == 3 and all(out.resolve() in p.resolve().parents for p in written)
    expected = out / str(audio).lstrip("/")  # an escaping path is laid out by its absolute path
    assert {p.name for p in written} == {f"a.wav.{fmt}" for fmt in ("json", "txt", "srt")}
    assert Path(f"{expected}.json") in written
    assert files_under(work) - written == before  # nothing appeared anywhere else
    assert not named_like(tmp_path, "*evil*")


async def test_missing_format_is_reported_not_fatal(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 2)
    ledger = tmp_path / "l.db"
    with HostileServer(job_status="DONE", files="no_srt").run_in_thread() as server:  # no srt output
        await submit([str(tmp_path / "in")], hostile_settings(server, ledger, wait=True))
        report = await fetch_with(hostile_settings(server, ledger), tmp_path / "out")

    assert report.errors == [] and report.written == 4
    assert sorted(fmt for _path, fmt in report.missing) == ["srt", "srt"]
    assert {r.fetched_formats for r in records(ledger)} == {"json,txt"}


@pytest.mark.slow
async def test_interrupted_fetch_rerun_fetches_only_what_is_missing(sandbox: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 3)
    ledger = tmp_path / "l.db"
    out = tmp_path / "out"
    await run_submit(sandbox, [tmp_path / "in"], ledger, wait=True)
    # The 5th download (the second job's txt) hangs; the fetch is stopped while it does.
    hang = {"latency": {"fixed_ms": 30_000, "nth": [5]}}
    sandbox.set_faults(FaultPlan.model_validate({"operations": {"download": hang}}))
    async with opened(sandbox, ledger) as conn:
        with anyio.move_on_after(3) as scope:
            await fetch_transcripts(
                conn.ledger,
                conn.client,
                conn.session,
                out,
                ["json", "txt", "srt"],
                conn.policy,
                concurrency=1,
            )
    assert scope.cancelled_caught

    fetched = [r.fetched_formats for r in records(ledger)]
    assert fetched == ["json,srt,txt", "json", None]  # recorded output by output
    assert len(files_under(out)) == 4  # and no temporary file left behind
    downloads, files_calls = requests(sandbox, "download"), requests(sandbox, "files")

    report = await fetch(sandbox, ledger, out)

    assert (report.written, report.skipped, report.errors) == (5, 1, [])
    assert requests(sandbox, "download") - downloads == 5
    assert requests(sandbox, "files") - files_calls == 2  # the finished job is not even asked about
    assert len(files_under(out)) == 9

    again = await fetch(sandbox, ledger, out)
    assert (again.written, again.skipped) == (0, 3)
    assert requests(sandbox, "files") - files_calls == 2


async def test_delete_after_fetch_deletes_done_jobs_on_the_server(sandbox: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 3)
    garbage_wav(tmp_path / "in" / "broken.wav")
    ledger = tmp_path / "l.db"

    stats = await run_submit(
        sandbox, [tmp_path / "in"], ledger, wait=True, out=tmp_path / "out", delete_after_fetch=True
    )

    assert stats.transcripts_written == 9
    statuses = sorted(job.status for job in sandbox.jobs().jobs)
    assert statuses == ["DELETED", "DELETED", "DELETED", "FAILED"]  # a FAILED job is kept for retry
    assert sorted(str(r.job_status) for r in records(ledger)) == ["DELETED", "DELETED", "DELETED", "FAILED"]
    assert requests(sandbox, "delete") == 3
    calls = requests(sandbox, "files")

    report = await fetch(sandbox, ledger, tmp_path / "out", delete_after=True)

    assert (report.written, report.deleted, report.errors) == (0, 0, [])
    assert requests(sandbox, "files") == calls and requests(sandbox, "delete") == 3


async def test_delete_after_fetch_finishes_a_delete_an_earlier_run_missed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Fetched before without --delete-after-fetch (or stopped before the DELETE, or its answer was
    lost): a rerun with the flag deletes without downloading again, and a lost answer is checked."""
    make_tree(tmp_path / "in", 2)
    ledger = tmp_path / "l.db"
    await run_submit(sandbox, [tmp_path / "in"], ledger, wait=True, out=tmp_path / "out")
    sandbox.set_faults(FaultPlan.model_validate({"operations": {"delete": {"lost_response": {"nth": [1]}}}}))
    downloads = requests(sandbox, "download")

    report = await fetch(sandbox, ledger, tmp_path / "out", delete_after=True)

    assert (report.skipped, report.deleted, report.errors) == (2, 2, [])
    assert requests(sandbox, "download") == downloads
    assert [job.status for job in sandbox.jobs().jobs] == ["DELETED", "DELETED"]


# --- status: many open jobs page the list --------------------------------------------------------------


@pytest.mark.slow
async def test_status_with_many_open_jobs_pages_the_list(sandbox: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 30)
    ledger = tmp_path / "l.db"
    await run_submit(sandbox, [tmp_path / "in"], ledger)
    await anyio.sleep(0.3)
    gets_before = requests(sandbox, "get")

    async with opened(sandbox, ledger) as conn:
        report = await refresh_statuses(conn.ledger, conn.client, conn.policy)

    assert report.listed and report.refreshed == 30
    assert report.by_status == {"DONE": 30} and report.open_jobs == 0
    assert requests(sandbox, "list") >= 1
    assert requests(sandbox, "get") - gets_before <= 2

    async with opened(sandbox, ledger) as conn:  # nothing open: nothing asked
        lists = requests(sandbox, "list")
        again = await refresh_statuses(conn.ledger, conn.client, conn.policy)
    assert again.refreshed == 0 and requests(sandbox, "list") == lists


async def test_status_honours_the_read_rate_limit(sandbox: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 12)
    ledger = tmp_path / "l.db"
    await run_submit(sandbox, [tmp_path / "in"], ledger)
    started = time.monotonic()
    async with opened(sandbox, ledger, max_read_rps=5) as conn:
        report = await refresh_statuses(conn.ledger, conn.client, conn.policy)
    assert not report.listed and requests(sandbox, "get") == 12
    assert time.monotonic() - started >= 1.2  # 12 GETs at 5/s with a one-second burst: >= 1.4 s


# --- reconcile -----------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_reconcile_rebuilds_a_lost_ledger_and_submit_then_creates_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "in", 5)
    garbage_wav(tmp_path / "in" / "broken.wav")
    ledger = tmp_path / "l.db"
    await run_submit(sandbox, [tmp_path / "in"], ledger, wait=True)
    await resubmit_failed(settings_for(sandbox, ledger))  # broken.wav: generation 1 on the server
    retried = next(r for r in records(ledger) if r.path.endswith("broken.wav"))
    write_wav(tmp_path / "other" / "x.wav", freq=1234.0)  # someone else's job, another ledger
    await run_submit(sandbox, [tmp_path / "other"], tmp_path / "other.db")
    foreign = next(r.job_id for r in records(tmp_path / "other.db"))
    lose(ledger)
    attempts = len(sandbox.jobs().attempts)
    presigns = requests(sandbox, "presign")

    async with opened(sandbox, ledger) as conn:
        admitted = await admit_sources(conn, [str(tmp_path / "in")])
        report = await reconcile(conn.ledger, conn.client, conn.policy)

    assert (admitted.added, admitted.known, admitted.rejected) == (6, 0, 0)
    assert (report.matched, report.adopted) == (6, 1)
    assert report.unknown_on_server == [foreign]
    rebuilt = {r.path: r for r in records(ledger)}
    assert all(r.state is FileState.CREATED for r in rebuilt.values())
    assert rebuilt[retried.path].job_id == retried.job_id  # the later job, not the first failed one
    assert {str(f) for f in files} <= set(rebuilt)

    stats = await run_submit(sandbox, [tmp_path / "in"], ledger)

    assert (stats.queued, stats.skipped_done, stats.created) == (0, 6, 0)
    assert len(sandbox.jobs().attempts) == attempts, "no create call at all"
    assert requests(sandbox, "presign") == presigns
    creates = successful_creates(sandbox)
    assert len(creates) == len(set(creates))


# --- the CLI -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_status_fetch_retry_failed_and_reconcile(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 2)
    bad = garbage_wav(tmp_path / "in" / "broken.wav")
    ledger = tmp_path / "l.db"
    env = {"SLNG_API_KEY": sandbox_thread.api_key, "SLNG_BULK_API_URL": sandbox_thread.api_url}
    common = ("--ledger", str(ledger))

    missing = run_cli("status", "--ledger", str(tmp_path / "nope.db"), env=env, cwd=tmp_path)
    assert missing.returncode == ExitCode.CONFIG and "no ledger" in missing.stderr
    assert not (tmp_path / "nope.db").exists()

    submitted = run_cli("submit", str(tmp_path / "in"), *common, env=env, cwd=tmp_path)
    assert submitted.returncode == ExitCode.OK, submitted.stderr
    time.sleep(0.3)

    status = run_cli("status", *common, env=env, cwd=tmp_path)
    assert status.returncode == ExitCode.FAILED, status.stderr
    counts = dict(line.split() for line in status.stdout.splitlines())
    assert counts == {"DONE": "2", "FAILED": "1"}
    assert f"FAILED {bad} (job " in status.stderr and UNDECODABLE in status.stderr
    assert "Traceback" not in status.stderr

    no_out = run_cli("fetch", *common, env=env, cwd=tmp_path)
    assert no_out.returncode == ExitCode.USAGE and "--out" in no_out.stderr
    bad_format = run_cli("fetch", *common, "--out", "o", "--formats", "json,pdf", env=env, cwd=tmp_path)
    assert bad_format.returncode == ExitCode.USAGE and "pdf" in bad_format.stderr

    fetched = run_cli("fetch", *common, "--out", str(tmp_path / "out"), env=env, cwd=tmp_path)
    assert fetched.returncode == ExitCode.OK, fetched.stderr
    assert "6 transcripts written" in fetched.stderr and "0 jobs already fetched" in fetched.stderr
    assert len(files_under(tmp_path / "out")) == 6
    refetched = run_cli(
        "fetch", *common, "--out", str(tmp_path / "out"), "--formats", "json", env=env, cwd=tmp_path
    )
    assert refetched.returncode == ExitCode.OK
    assert "0 transcripts written" in refetched.stderr and "2 jobs already fetched" in refetched.stderr

    retried = run_cli("retry-failed", *common, "--wait", env=env, cwd=tmp_path)
    assert retried.returncode == ExitCode.FAILED, retried.stderr  # the new job fails as well
    assert "JOB FAILED" in retried.stderr and UNDECODABLE in retried.stderr
    assert len(history(ledger)) == 1

    lose(ledger)
    rebuilt = run_cli("reconcile", str(tmp_path / "in"), *common, env=env, cwd=tmp_path)
    assert rebuilt.returncode == ExitCode.OK, rebuilt.stderr
    assert "3 files added" in rebuilt.stderr and "1 later resubmissions adopted" in rebuilt.stderr
    assert "unknown to this ledger" not in rebuilt.stderr
    attempts = len(sandbox_thread.jobs().attempts)
    again = run_cli("submit", str(tmp_path / "in"), *common, "--error-on-nothing", env=env, cwd=tmp_path)
    # Nothing is sent, but the adopted job of broken.wav FAILED: reported again, exit 1, not 7.
    assert again.returncode == ExitCode.FAILED, again.stderr
    assert f"FAILED {bad}" in again.stderr and "retry-failed" in again.stderr
    assert "nothing to do" not in again.stderr
    assert len(sandbox_thread.jobs().attempts) == attempts


@pytest.mark.slow
def test_cli_submit_wait_reports_the_failed_job(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 1)
    bad = garbage_wav(tmp_path / "in" / "zz.wav")
    env = {"SLNG_API_KEY": sandbox_thread.api_key, "SLNG_BULK_API_URL": sandbox_thread.api_url}

    result = run_cli(
        "submit",
        str(tmp_path / "in"),
        "--ledger",
        str(tmp_path / "l.db"),
        "--wait",
        "--out",
        str(tmp_path / "out"),
        env=env,
        cwd=tmp_path,
    )

    assert result.returncode == ExitCode.FAILED, result.stderr
    assert f"JOB FAILED {bad}" in result.stderr and UNDECODABLE in result.stderr
    assert "jobs: DONE 1, FAILED 1" in result.stderr
    assert len(files_under(tmp_path / "out")) == 3
