"""`find … -print0 | slng-bulk submit - -0` is taken; a folder run's summary counts the links and
dot-files it left out."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.errors import ExitCode
from pipeline.sandbox import Sandbox
from tests.support.audio import make_tree, write_wav
from tests.support.runs import cli_env, created_job_ids, run_cli


def test_nul_separated_paths_on_stdin_are_submitted(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    files = [*make_tree(tmp_path / "in", 2), write_wav(tmp_path / "in" / " spaced name .wav")]
    done = run_cli(
        "submit",
        "-",
        "-0",
        env=cli_env(sandbox_thread, tmp_path / "l.db"),
        stdin="".join(f"{f}\0" for f in files),
    )
    assert done.returncode == ExitCode.OK, done.stderr
    assert len(created_job_ids(sandbox_thread)) == 3


def test_the_summary_counts_skipped_links_and_dot_files(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "in", 2)
    write_wav(tmp_path / "in" / ".partial.wav")
    os.symlink(files[0], tmp_path / "in" / "alias.wav")
    summary = tmp_path / "s.json"
    done = run_cli(
        "submit",
        str(tmp_path / "in"),
        "--summary-json",
        str(summary),
        env=cli_env(sandbox_thread, tmp_path / "l.db"),
    )
    assert done.returncode == ExitCode.OK, done.stderr
    counts = json.loads(summary.read_text())["counts"]
    assert (counts["queued"], counts["skipped_links"], counts["skipped_hidden"]) == (2, 1, 1)
