"""The follow commands against a server that is odd rather than broken (tests/support/hostile.py):
lower-case statuses, a job list without `meta`, output formats in capitals, and `--formats SRT,Json`."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ExitCode
from tests.support.audio import make_tree
from tests.support.hostile import HostileServer
from tests.support.runs import run_cli


def _env(server: HostileServer) -> dict[str, str]:
    return {"SLNG_API_KEY": server.api_key, "SLNG_BULK_API_URL": server.base_url}


def test_status_wait_and_fetch_with_a_server_that_says_done_in_lower_case(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "in", 2)
    ledger = ("--ledger", str(tmp_path / "l.db"))
    with HostileServer(job_status="done", files="upper_formats").run_in_thread() as server:
        waited = run_cli(
            "submit", str(tmp_path / "in"), *ledger, "--progress", "none", "--wait", "--wait-timeout", "8",
            env=_env(server), cwd=tmp_path,
        )  # fmt: skip
        status = run_cli("status", *ledger, env=_env(server), cwd=tmp_path)
        server.job_status = "Done"
        fetched = run_cli(
            "fetch", *ledger, "--out", str(tmp_path / "out"), "--formats", "SRT,Json",
            env=_env(server), cwd=tmp_path,
        )  # fmt: skip

    assert waited.returncode == ExitCode.OK, waited.stderr  # "done" is finished: no wait to the timeout
    assert status.returncode == ExitCode.OK, status.stderr
    assert dict(line.split() for line in status.stdout.splitlines()) == {"DONE": "2"}
    assert "0 jobs still open" in status.stderr
    assert fetched.returncode == ExitCode.OK, fetched.stderr
    assert "4 transcripts written" in fetched.stderr and "missing" not in fetched.stderr
    written = {p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_file()}
    expected = {Path(f"{f.relative_to(tmp_path / 'in')}.{fmt}") for f in files for fmt in ("srt", "json")}
    assert written == expected


def test_reconcile_with_a_job_list_without_meta(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 3)
    ledger = ("--ledger", str(tmp_path / "l.db"))
    with HostileServer(listing="no_meta").run_in_thread() as server:
        submitted = run_cli("submit", str(tmp_path / "in"), *ledger, env=_env(server), cwd=tmp_path)
        assert submitted.returncode == ExitCode.OK, submitted.stderr
        server.created.add("someoneelses1")
        reconciled = run_cli("reconcile", *ledger, "--retries", "1", env=_env(server), cwd=tmp_path)
        lists = server.requests_to("/v1/batch/jobs")
    assert reconciled.returncode == ExitCode.OK, reconciled.stderr
    assert "3 already known" in reconciled.stderr
    assert "1 jobs on the server are unknown to this ledger" in reconciled.stderr
    assert "someoneelses1" in reconciled.stderr
    assert len([s for s in lists if s.method == "GET" and s.path == "/v1/batch/jobs"]) == 2
