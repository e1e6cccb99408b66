"""The shared-ledger commands on bad input: one line, the documented exit code, no password shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.support.audio import write_wav
from tests.support.runs import child_env, run_cli

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


@pytest.fixture
def no_psycopg(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import psycopg` fails, as on an install without the postgres extra:
    a stand-in package first on PYTHONPATH whose import raises (nothing of ours is replaced)."""
    fake = tmp_path / "no-psycopg" / "psycopg"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\")\n")
    ours = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join([str(fake.parent), *([ours] if ours else [])])}


def test_the_stand_in_really_hides_psycopg(no_psycopg: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import psycopg"], env=child_env(no_psycopg), capture_output=True, text=True
    )
    assert done.returncode != 0 and "No module named 'psycopg'" in done.stderr


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["work"], ["enqueue", "missing.csv"]])
@pytest.mark.parametrize("driver", ["installed", "missing"])
def test_fleet_commands_refuse_a_sqlite_ledger_before_any_work(
    command: list[str], driver: str, tmp_path: Path, no_psycopg: dict[str, str]
) -> None:
    env = {"SLNG_API_KEY": "sk-test"} | (no_psycopg if driver == "missing" else {})
    result = run_cli(*command, "--ledger", str(tmp_path / "l.db"), env=env, cwd=tmp_path)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    line = one_line(result)
    assert f"{command[0]} needs a shared PostgreSQL ledger" in line
    assert "--ledger postgresql://" in line and "SLNG_BULK_LEDGER" in line
    assert not (tmp_path / "l.db").exists(), "refused before the ledger (or the sources) were touched"


@pytest.mark.parametrize("command", [["work"], ["enqueue", "missing.csv"]])
def test_fleet_commands_without_the_postgres_extra_say_what_to_install(
    command: list[str], tmp_path: Path, no_psycopg: dict[str, str]
) -> None:
    env = {"SLNG_API_KEY": "sk-test"} | no_psycopg
    result = run_cli(*command, "--ledger", UNREACHABLE, env=env, cwd=tmp_path)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    line = one_line(result)
    assert "pip install 'slng-bulk[postgres]'" in line and "ModuleNotFoundError" not in line
    assert "hunter2secret" not in result.stderr


@pytest.mark.parametrize("rule", ["/mnt/nas", "relative=/data"])
def test_a_bad_path_map_is_a_usage_error(tmp_path: Path, rule: str) -> None:
    result = run_cli("work", "--path-map", rule, "--ledger", UNREACHABLE, cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "--path-map takes FROM=TO" in result.stderr
