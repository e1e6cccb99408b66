"""Output for scripts: `status --format json` and one file's history with `report --path/--job-id`."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ExitCode
from pipeline.sandbox import Sandbox
from tests.support.audio import tree_with_a_broken_file
from tests.support.runs import run_cli

UNDECODABLE = "The audio file could not be decoded."


def status_json(common: tuple[str, ...], env: dict[str, str], cwd: Path) -> tuple[int, dict[str, Any]]:
    """`status --format json` until no job is open (the sandbox's jobs finish within a second)."""
    deadline = time.monotonic() + 30
    while True:
        result = run_cli("status", "--format", "json", *common, env=env, cwd=cwd)
        document = json.loads(result.stdout)  # stdout is the JSON document and nothing else
        if document["open_jobs"] == 0 or time.monotonic() > deadline:
            return result.returncode, document
        time.sleep(0.3)


def report_json(*args: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    result = run_cli("report", "--format", "json", *args, env=env, cwd=cwd)
    assert result.returncode == ExitCode.OK, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _instant(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.removesuffix("Z") + "+00:00")


@pytest.mark.slow
def test_status_json_and_one_files_history(
    sandbox_thread: Sandbox, ledger_target: str, tmp_path: Path
) -> None:
    """On either backend: the same status document, and the same history of one file."""
    bad = tree_with_a_broken_file(tmp_path / "in", good=2)
    (tmp_path / "m.csv").write_text("path\nin/d0/f00000.wav\nghost.wav\n")
    env = {"SLNG_API_KEY": sandbox_thread.api_key, "SLNG_BULK_API_URL": sandbox_thread.api_url}
    common = ("--ledger", ledger_target)
    submitted = run_cli("submit", "in", "m.csv", *common, env=env, cwd=tmp_path)
    assert submitted.returncode == ExitCode.REJECTED, submitted.stderr  # ghost.wav

    code, status = status_json(common, env, tmp_path)
    assert code == ExitCode.FAILED
    assert status["by_status"] == {"DONE": 2, "FAILED": 1} and status["open_jobs"] == 0
    assert [problem["path"] for problem in status["failed"]] == [str(bad)]
    assert UNDECODABLE in status["failed"][0]["message"] and status["failed"][0]["job_id"]
    assert status["not_found"] == [] and status["unknown"] == []

    first = report_json("--path", "in/broken.wav", *common, env=env, cwd=tmp_path)
    assert first["rejections"] == []
    [record] = first["files"]
    old_job = record["job_id"]
    assert record["path"] == str(bad) and record["state"] == "created"
    assert record["job_status"] == "FAILED" and UNDECODABLE in record["job_error"]
    assert record["attempts"] >= 1 and record["jobs"] == []
    times = record["times"]
    steps = [
        _instant(times[step]) for step in ("admitted", "presigned", "uploaded", "create_sent", "created")
    ]
    assert steps == sorted(steps)
    assert times["status_checked"] is not None and times["fetched"] is None

    retried = run_cli("retry-failed", *common, env=env, cwd=tmp_path)
    assert retried.returncode == ExitCode.OK, retried.stderr
    by_old_id = report_json("--job-id", old_job, *common, env=env, cwd=tmp_path)
    [renewed] = by_old_id["files"]
    assert renewed["job_id"] != old_job and renewed["path"] == str(bad)
    [earlier] = renewed["jobs"]
    assert earlier["job_id"] == old_job and earlier["state"] == "created"
    assert UNDECODABLE in earlier["reason"] and _instant(earlier["replaced_at"]) >= steps[-1]
    assert report_json("--job-id", renewed["job_id"], *common, env=env, cwd=tmp_path) == by_old_id

    text = run_cli("report", "--path", str(bad), *common, env=env, cwd=tmp_path)
    assert text.returncode == ExitCode.OK, text.stderr
    assert old_job in text.stdout and renewed["job_id"] in text.stdout and "{" not in text.stdout

    ghost = report_json("--path", "ghost.wav", *common, env=env, cwd=tmp_path)
    assert ghost["files"] == [] and len(ghost["rejections"]) == 1
    assert ghost["rejections"][0]["line"] == 3 and ghost["rejections"][0]["reason"]

    nothing = run_cli("report", "--format", "json", "--job-id", "nope", *common, env=env, cwd=tmp_path)
    assert nothing.returncode == ExitCode.OK and json.loads(nothing.stdout) == {"files": [], "rejections": []}
    assert "no file" in nothing.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--path", "a.wav", "--job-id", "j1"), "not both"),
        (("--path", "a.wav", "--state", "failed"), "does not go with"),
        (("--job-id", "j1", "--format", "csv"), "history is text or json"),
        (("--format", "text"), "is for one file's history"),
    ],
)
def test_conflicting_report_arguments_are_usage_errors(
    args: tuple[str, ...], says: str, tmp_path: Path
) -> None:
    result = run_cli("report", *args, "--ledger", str(tmp_path / "l.db"), cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
