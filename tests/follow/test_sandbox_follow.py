"""After the demo, the follow commands with `--sandbox` see the demo's jobs: the in-process sandbox
keeps its state in a folder beside the ledger (`<ledger>.sandbox/`), so each command's sandbox is the
same world, as the README's commands assume. Real subprocesses, as a user runs them."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.support.audio import make_tree
from tests.support.runs import run_cli

pytestmark = pytest.mark.slow


def _cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = run_cli(*args, env={"HOME": str(tmp_path)}, cwd=tmp_path, timeout=90)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def _counts(stdout: str) -> dict[str, str]:
    return dict(line.split() for line in stdout.splitlines())


def test_submit_then_status_fetch_and_reconcile_with_sandbox(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "in", 3)
    code, _, err = _cli(tmp_path, "submit", "in", "--sandbox", "--ledger", "demo.db", "--progress", "none")
    assert code == ExitCode.OK, err
    data_dir = tmp_path / "demo.db.sandbox"
    assert (data_dir / "state.json").is_file()
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700  # uploads of the user's audio live here

    deadline = time.monotonic() + 30
    while True:
        code, out, err = _cli(tmp_path, "status", "--sandbox", "--ledger", "demo.db")
        if _counts(out) == {"DONE": "3"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert code == ExitCode.OK, err
    assert _counts(out) == {"DONE": "3"}, out + err

    code, _, err = _cli(tmp_path, "fetch", "--sandbox", "--ledger", "demo.db", "--out", "out/")
    assert code == ExitCode.OK, err
    assert "9 transcripts written" in err
    written = {p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert written == {
        Path(f"{f.relative_to(tmp_path / 'in')}.{fmt}") for f in files for fmt in ("json", "txt", "srt")
    }

    for suffix in ("", "-wal", "-shm"):  # the ledger is lost; the sandbox's world is not
        Path(f"{tmp_path / 'demo.db'}{suffix}").unlink(missing_ok=True)
    code, _, err = _cli(tmp_path, "reconcile", "in", "--sandbox", "--ledger", "demo.db")
    assert code == ExitCode.OK, err
    assert "3 files added" in err and "3 jobs found on the server and marked created" in err
    code, _, err = _cli(tmp_path, "submit", "in", "--sandbox", "--ledger", "demo.db", "--error-on-nothing")
    assert code == ExitCode.NOTHING_TO_DO, err


def test_each_ledger_has_its_own_sandbox_world(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 2)
    code, _, err = _cli(tmp_path, "submit", "in", "--sandbox", "--ledger", "a.db", "--progress", "none")
    assert code == ExitCode.OK, err
    code, _, err = _cli(tmp_path, "reconcile", "--sandbox", "--ledger", "b.db")
    assert code == ExitCode.OK, err
    assert "unknown to this ledger" not in err  # b.db's sandbox never saw a.db's jobs
    assert (tmp_path / "a.db.sandbox").is_dir() and (tmp_path / "b.db.sandbox").is_dir()
