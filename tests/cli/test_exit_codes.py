"""Which exit code each kind of failure gets, through the real command line.

Usage errors (the command line itself) exit 2; configuration errors (key, sources, settings from the
environment or a config file, the ledger, the transport check) exit 8; a bug exits 10 with one
redacted line. Every `ConfigError` raised in the package has a case here that names its category.
"""

from __future__ import annotations

import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.support.audio import write_wav
from tests.support.runs import child_env, run_cli

KEY = {"SLNG_API_KEY": "sk-test-exit-codes-0123"}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder with one recording, broken ledgers, broken config files and a plain file."""
    write_wav(tmp_path / "in" / "a.wav")
    (tmp_path / "colour.csv").write_text("path,colour\nin/a.wav,red\n")
    (tmp_path / "junk.db").write_bytes(b"this is not a SQLite database at all\n" * 200)
    sqlite3.connect(tmp_path / "empty.db").execute("CREATE TABLE other (x)").connection.close()
    future = sqlite3.connect(tmp_path / "future.db")
    future.execute("PRAGMA user_version = 999")
    future.close()
    (tmp_path / "unknown-key.toml").write_text("concurency = 3\n")
    (tmp_path / "not-toml.toml").write_text("concurrency = = 3\n")
    (tmp_path / "faults.toml").write_text("[[rules]]\nnot_a_field = true\n")
    (tmp_path / "afile").write_text("a file, not a folder\n")
    return tmp_path


USAGE_CASES = {
    "unknown option": (["submit", "--nope", "in"], {}, "--nope"),
    "unknown command": (["sbumit", "in"], {}, "sbumit"),
    "bad int flag": (["submit", "--concurrency", "0", "in"], {}, "--concurrency"),
    "bad size flag": (["submit", "--chunk-size", "1X", "in"], {}, "--chunk-size"),
    "bad choice flag": (["submit", "--diarization", "loud", "in"], {}, "--diarization"),
    "bad format flag": (["fetch", "--out", "o", "--formats", "pdf"], KEY, "--formats"),
    "bad key flag": (["submit", "--api-key", "sk-bad key", "in"], {}, "--api-key"),
    "bad sandbox port": (["sandbox", "--api-port", "many"], {}, "--api-port"),
    "missing sources": (["submit"], KEY, "SOURCES"),
    "fetch without --out": (["fetch"], KEY, "--out"),
}

CONFIG_CASES = {
    "missing key": (["submit", "in"], {}, "SLNG_API_KEY"),
    "missing source": (["submit", "--sandbox", "nothere.csv"], {}, "nothere.csv"),
    "bad manifest header": (["submit", "--sandbox", "colour.csv"], {}, "colour"),
    "bad env value": (["submit", "--sandbox", "in"], {"SLNG_BULK_CONCURRENCY": "0"}, "concurrency"),
    "bad env size": (["submit", "--sandbox", "in"], {"SLNG_BULK_CHUNK_SIZE": "1X"}, "chunk_size"),
    "bad env format": (["fetch", "--out", "o"], {**KEY, "SLNG_BULK_FORMATS": "pdf"}, "pdf"),
    "bad env key": (["submit", "in"], {"SLNG_API_KEY": "sk-bad key"}, "api_key"),
    "unknown config key": (["submit", "--sandbox", "--config", "unknown-key.toml", "in"], {}, "concurency"),
    "config not TOML": (["submit", "--sandbox", "--config", "not-toml.toml", "in"], {}, "not valid TOML"),
    "config missing": (["submit", "--sandbox", "--config", "nope.toml", "in"], {}, "does not exist"),
    "plain http": (["submit", "in", "--api-url", "http://example.com"], KEY, "not https"),
    "status: no ledger": (["status", "--ledger", "nope.db"], KEY, "no ledger"),
    "fetch: no ledger": (["fetch", "--out", "o", "--ledger", "nope.db"], KEY, "no ledger"),
    "retry-failed: no ledger": (["retry-failed", "--ledger", "nope.db"], KEY, "no ledger"),
    "report: no ledger": (["report", "--ledger", "nope.db"], {}, "no ledger"),
    "report: not a ledger": (["report", "--ledger", "junk.db"], {}, "cannot read ledger"),
    "report: empty database": (["report", "--ledger", "empty.db"], {}, "cannot read ledger"),
    "ledger not a database": (["submit", "--sandbox", "--ledger", "junk.db", "in"], {}, "cannot open ledger"),
    "ledger from the future": (["submit", "--sandbox", "--ledger", "future.db", "in"], {}, "newer"),
    "bad fault plan": (["sandbox", "--faults", "faults.toml"], {}, "sandbox"),
}


def _assert_one_line(stderr: str, fragment: str) -> None:
    assert "Traceback" not in stderr
    assert fragment in stderr, stderr
    assert "sk-bad key" not in stderr  # a malformed key is never quoted back


def _fails_in_one_line(case: tuple[list[str], dict[str, str], str], code: ExitCode, workspace: Path) -> str:
    """Run one (args, env, fragment) case: it exits `code` with one line naming `fragment`."""
    args, env, fragment = case
    result = run_cli(*args, env=env, cwd=workspace)
    assert result.returncode == code, result.stderr
    _assert_one_line(result.stderr, fragment)
    return result.stderr


@pytest.mark.parametrize("case", USAGE_CASES, ids=list(USAGE_CASES))
def test_usage_errors_exit_2(case: str, workspace: Path) -> None:
    _fails_in_one_line(USAGE_CASES[case], ExitCode.USAGE, workspace)


@pytest.mark.parametrize("case", CONFIG_CASES, ids=list(CONFIG_CASES))
def test_configuration_errors_exit_8(case: str, workspace: Path) -> None:
    stderr = _fails_in_one_line(CONFIG_CASES[case], ExitCode.CONFIG, workspace)
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, stderr


@pytest.mark.slow
def test_unusable_output_folder_is_a_configuration_error(workspace: Path) -> None:
    result = run_cli("submit", "--sandbox", "--wait", "--out", "afile/sub", "in", cwd=workspace)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    _assert_one_line(result.stderr, "cannot create the output folder")


# A command that fails the way a bug does, registered on the real group in a child process.
CRASHING_CLI = textwrap.dedent(
    """
    import sys
    import click
    from pipeline.cli.app import main
    from pipeline.logs import configure_logging

    @main.command()
    @click.option("--level", default="info")
    def crash(level):
        configure_logging("text", level)
        raise RuntimeError(
            "boom at https://bucket.example/k?X-Amz-Signature=deadbeefcafe&X-Amz-Credential=AKIAX"
        )

    main()
    """
)


def _crash(*args: str, cwd: Path) -> tuple[int, str]:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", CRASHING_CLI, "crash", *args],
        capture_output=True,
        text=True,
        env=child_env(None),
        cwd=cwd,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr


def test_an_unexpected_exception_is_one_redacted_line_and_exit_10(tmp_path: Path) -> None:
    code, stderr = _crash(cwd=tmp_path)
    assert code == ExitCode.INTERNAL, stderr
    assert stderr.strip().splitlines() == [stderr.strip()], stderr  # one line
    assert stderr.startswith("slng-bulk: internal error: RuntimeError: boom at"), stderr
    assert "deadbeefcafe" not in stderr and "AKIAX" not in stderr and "Traceback" not in stderr


def test_the_traceback_shows_only_at_debug_and_redacted(tmp_path: Path) -> None:
    code, stderr = _crash("--level", "debug", cwd=tmp_path)
    assert code == ExitCode.INTERNAL, stderr
    assert "Traceback" in stderr and "internal error: RuntimeError" in stderr
    assert "deadbeefcafe" not in stderr and "AKIAX" not in stderr
