"""The shared-ledger commands on bad input: one line, the documented exit code, no password shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.support.audio import write_wav
from tests.support.runs import run_cli

UNREACHABLE = "postgresql://slng:hunter2secret@127.0.0.1:1/ledger"


@pytest.mark.parametrize("command", [["work"], ["status"], ["enqueue", "SOURCE"], ["report"]])
def test_an_unreachable_shared_ledger_is_a_configuration_error_without_the_password(
    command: list[str], tmp_path: Path
) -> None:
    write_wav(tmp_path / "a.wav")
    args = [str(tmp_path) if part == "SOURCE" else part for part in command]
    result = run_cli(*args, "--ledger", UNREACHABLE, env={"SLNG_API_KEY": "sk-test"}, cwd=tmp_path)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert "cannot open ledger postgresql://slng:***@127.0.0.1:1/ledger" in result.stderr or (
        "cannot read ledger postgresql://slng:***@127.0.0.1:1/ledger" in result.stderr
    ), result.stderr
    assert "hunter2secret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_work_needs_a_shared_ledger(tmp_path: Path) -> None:
    result = run_cli(
        "work", "--ledger", str(tmp_path / "l.db"), env={"SLNG_API_KEY": "sk-test"}, cwd=tmp_path
    )
    assert result.returncode == ExitCode.CONFIG
    assert "work needs a shared ledger: --ledger postgresql://" in result.stderr


@pytest.mark.parametrize("rule", ["/mnt/nas", "relative=/data"])
def test_a_bad_path_map_is_a_usage_error(tmp_path: Path, rule: str) -> None:
    result = run_cli("work", "--path-map", rule, "--ledger", UNREACHABLE, cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "--path-map takes FROM=TO" in result.stderr
