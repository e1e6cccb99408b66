"""Where the API key comes from, and which source wins.

SLNG_API_KEY is the documented variable; SLNG_BULK_API_KEY (the generic SLNG_BULK_<SETTING> name) is
kept as an alias. Precedence, highest first: --api-key, --api-key-file, SLNG_API_KEY,
SLNG_BULK_API_KEY, SLNG_BULK_API_KEY_FILE, api_key in the config file, api_key_file in it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config.settings import load_settings
from pipeline.errors import ExitCode
from pipeline.logs import LOGGER_NAME
from pipeline.sandbox import Sandbox
from tests.support.audio import write_wav
from tests.support.runs import run_cli


@pytest.fixture
def warnings_seen(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Our logger's records, whatever an earlier test did to its propagation."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.WARNING)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


SOURCES = (
    "flag api_key",
    "flag api_key_file",
    "SLNG_API_KEY",
    "SLNG_BULK_API_KEY",
    "SLNG_BULK_API_KEY_FILE",
    "config api_key",
    "config api_key_file",
)


def _key_of(source: str) -> str:
    return "sk-" + source.replace(" ", "-").replace("_", "-").lower() + "-0123"


def _load_with(sources: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    flags: dict[str, object] = {}
    config_lines = []
    for source in sources:
        key = _key_of(source)
        key_file = tmp_path / f"{key}.txt"
        key_file.write_text(key + "\n")
        if source == "flag api_key":
            flags["api_key"] = key
        elif source == "flag api_key_file":
            flags["api_key_file"] = key_file
        elif source == "SLNG_BULK_API_KEY_FILE":
            monkeypatch.setenv(source, str(key_file))
        elif source.startswith("SLNG_"):
            monkeypatch.setenv(source, key)
        elif source == "config api_key":
            config_lines.append(f'api_key = "{key}"')
        else:
            config_lines.append(f'api_key_file = "{key_file}"')
    (tmp_path / "slng-bulk.toml").write_text("\n".join(config_lines) + "\n")
    settings = load_settings(environment=True, **flags)
    assert settings.api_key is not None
    return settings.api_key.get_secret_value()


@pytest.mark.parametrize("top", range(len(SOURCES)), ids=list(SOURCES))
def test_each_source_beats_every_one_below_it(
    top: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --api-key together with --api-key-file is refused by the command line: leave the file out.
    given = (SOURCES[top], *SOURCES[2:]) if SOURCES[top] == "flag api_key" else SOURCES[top:]
    assert _load_with(given, tmp_path, monkeypatch) == _key_of(SOURCES[top])


def _key_with_both_variables(monkeypatch: pytest.MonkeyPatch, canonical: str, alias: str) -> str:
    """The key settings load with SLNG_API_KEY and its alias SLNG_BULK_API_KEY both set."""
    monkeypatch.setenv("SLNG_API_KEY", canonical)
    monkeypatch.setenv("SLNG_BULK_API_KEY", alias)
    key = load_settings(environment=True).api_key
    assert key is not None
    return key.get_secret_value()


def test_both_variables_differing_use_slng_api_key_and_warn(
    monkeypatch: pytest.MonkeyPatch, warnings_seen: pytest.LogCaptureFixture
) -> None:
    assert _key_with_both_variables(monkeypatch, "sk-canonical-0123", "sk-alias-4567") == "sk-canonical-0123"
    [message] = {record.getMessage() for record in warnings_seen.records}  # once, seen by root or here
    assert "SLNG_API_KEY" in message and "SLNG_BULK_API_KEY" in message
    assert "sk-canonical-0123" not in message and "sk-alias-4567" not in message


def test_both_variables_equal_is_no_warning(
    monkeypatch: pytest.MonkeyPatch, warnings_seen: pytest.LogCaptureFixture
) -> None:
    assert _key_with_both_variables(monkeypatch, "sk-same-0123", " sk-same-0123\n") == "sk-same-0123"
    assert warnings_seen.records == []


def test_key_and_key_file_flags_together_are_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("sk-from-file-0123\n")
    result = run_cli("status", "--api-key", "sk-flag-0123", "--api-key-file", "key", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "--api-key-file" in result.stderr and "sk-flag-0123" not in result.stderr


def test_the_canonical_variable_wins_on_a_real_run(sandbox_thread: Sandbox, tmp_path: Path) -> None:
    write_wav(tmp_path / "in" / "a.wav")
    env = {
        "SLNG_API_KEY": sandbox_thread.api_key,
        "SLNG_BULK_API_KEY": "sk-wrong-alias-0123",
        "SLNG_BULK_API_URL": sandbox_thread.api_url,
    }
    result = run_cli("submit", "in", env=env, cwd=tmp_path)
    assert result.returncode == ExitCode.OK, result.stderr
    assert "both set and differ" in result.stderr and "sk-wrong-alias-0123" not in result.stderr
