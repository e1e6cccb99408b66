"""A new label on finished files costs nothing: `--tags batch7` on a done folder creates no job, and
says so. Also after an upgrade: a folder submitted by the previous release (7009f99, whose identity
hashed the tags) is not sent again by this one, whatever its tags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.sandbox import Sandbox
from tests.support.audio import make_tree
from tests.support.env import isolate
from tests.support.history import old_checkout
from tests.support.runs import child_env, cli_env, created_job_ids, run_cli, successful_creates

RELEASE = "7009f99"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def counts(summary: Path) -> dict[str, int]:
    return dict(json.loads(summary.read_text())["counts"])


def test_new_tags_on_done_files_are_reported_not_resubmitted(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "audio", 6)
    env = cli_env(sandbox_thread, tmp_path / "l.db")
    first = run_cli("submit", str(tmp_path / "audio"), "--tags", "batch6", env=env)
    assert first.returncode == ExitCode.OK, first.stderr
    summary = tmp_path / "s.json"
    again = run_cli(
        "submit", str(tmp_path / "audio"), "--tags", "batch7", "--summary-json", str(summary), env=env
    )
    assert again.returncode == ExitCode.OK, again.stderr
    assert len(successful_creates(sandbox_thread)) == 6
    assert counts(summary)["skipped_done"] == 6 and counts(summary)["skipped_relabelled"] == 6
    assert "6 done files have new tracking, metadata or output_config; not resubmitted" in again.stderr
    assert "--force resubmits" in again.stderr


def test_a_folder_done_by_the_previous_release_is_not_sent_again(
    sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    make_tree(tmp_path / "audio", 5)
    env = cli_env(sandbox_thread, tmp_path / "l.db")
    old = old_checkout(tmp_path, RELEASE)
    before = subprocess.run(
        [sys.executable, "-m", "pipeline.cli.app", "submit", str(tmp_path / "audio"), "--tags", "batch6"],
        env={**child_env(env), "PYTHONPATH": str(old)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert before.returncode == ExitCode.OK, before.stderr
    jobs = set(created_job_ids(sandbox_thread))
    summary = tmp_path / "s.json"
    after = run_cli(
        "submit", str(tmp_path / "audio"), "--tags", "batch7", "--summary-json", str(summary), env=env
    )
    assert after.returncode == ExitCode.OK, after.stderr
    assert set(created_job_ids(sandbox_thread)) == jobs  # nothing new created
    assert counts(summary)["skipped_done"] == 5 and counts(summary)["queued"] == 0
