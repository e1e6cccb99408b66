"""`--dry-run` asks the ledger: new, done, changed and failed files are counted apart, bytes and
audio hours are those of what would be sent, and -v lists each file with what would happen to it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.observe.stats import human_bytes
from pipeline.sandbox import Sandbox
from tests.support.audio import make_tree, write_wav
from tests.support.env import isolate
from tests.support.runs import cli_env, run_cli


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def test_a_dry_run_counts_new_done_changed_and_failed_files(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "in", 4, seconds=1.0)
    broken = tmp_path / "in" / "broken.wav"
    broken.write_bytes(b"this is not audio, just text pretending\n" * 50)
    env = cli_env(sandbox_thread, tmp_path / "l.db")
    first = run_cli("submit", str(tmp_path / "in"), "--wait", env=env)
    assert first.returncode == ExitCode.FAILED, first.stderr  # the broken file's job FAILED
    write_wav(files[0], seconds=2.0, freq=999.0)  # changed since its job
    os.utime(files[0], ns=(1, 1))
    new = write_wav(tmp_path / "in" / "new.wav", seconds=3.0)

    plain = run_cli("submit", str(tmp_path / "in"), "--dry-run", env=env)
    assert plain.returncode == ExitCode.OK, plain.stderr
    assert "dry run: 6 valid files, 0 rejected rows (1 new, 1 changed, 3 done, 1 failed)" in plain.stdout
    assert f"would send 2 files, {human_bytes(files[0].stat().st_size + new.stat().st_size)}," in plain.stdout
    assert f"{new}" not in plain.stdout  # no list without -v

    listed = run_cli("submit", str(tmp_path / "in"), "--dry-run", "-v", env=env)
    lines = dict(
        line.split(maxsplit=1)[::-1]
        for line in listed.stdout.splitlines()
        if line.startswith(("new", "changed", "done", "failed"))
    )
    assert lines[str(new)] == "new" and lines[str(files[0])] == "changed" and lines[str(broken)] == "failed"
    assert lines[str(files[1])] == "done"

    tagged = run_cli("submit", str(tmp_path / "in"), "--dry-run", "-v", "--tags", "batch7", env=env)
    assert "3 done, new labels" in tagged.stdout


def test_a_dry_run_without_a_ledger_makes_none(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 2)
    done = run_cli("submit", str(tmp_path / "in"), "--dry-run", "--ledger", str(tmp_path / "l.db"))
    assert done.returncode == ExitCode.OK, done.stderr
    assert "(2 new)" in done.stdout and "would send 2 files" in done.stdout
    assert not (tmp_path / "l.db").exists()
