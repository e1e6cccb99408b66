"""A bad setting says where it came from (flag, variable, config file and key) and what to do, in
plain words; a misspelt config key gets the nearest valid one."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import load_settings
from pipeline.errors import ConfigError
from tests.support.env import isolate
from tests.support.runs import run_cli


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def problem(**flags: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(environment=True, **flags)
    return str(caught.value)


def test_a_variable_is_named_and_the_rule_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLNG_BULK_CONCURRENCY", "0")
    assert problem() == (
        "invalid setting concurrency (from variable SLNG_BULK_CONCURRENCY): must be at least 1 (got 0)"
    )
    monkeypatch.setenv("SLNG_BULK_CONCURRENCY", "many")
    assert "must be a whole number (got many)" in problem()


def test_a_config_file_value_names_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "slng-bulk.toml").write_text("retries = -1\n")
    message = problem()
    assert "(from config file slng-bulk.toml, key retries)" in message
    assert "must be at least 0" in message


def test_a_misspelt_config_key_gets_the_nearest_one(tmp_path: Path) -> None:
    (tmp_path / "slng-bulk.toml").write_text("concurency = 3\n")
    assert problem() == "unknown key concurency in config file slng-bulk.toml: did you mean concurrency?"


def test_an_argument_is_named_as_the_flag_on_the_command_line() -> None:
    assert problem(diarization="loud").startswith(
        "invalid setting diarization (from --diarization): must be one of"
    )


def test_a_secret_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLNG_API_KEY", "sk-bad key with spaces\x01")
    assert "sk-bad" not in problem()


def test_a_flag_says_its_rule_plainly(tmp_path: Path) -> None:
    done = run_cli("status", "--ledger", str(tmp_path / "l.db"), "--concurrency", "0")
    assert done.returncode == 2
    assert "Invalid value for '--concurrency': must be at least 1" in done.stderr
