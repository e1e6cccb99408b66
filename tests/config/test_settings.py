"""Settings precedence (flag > environment > file > default) and clear refusals of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.settings import load_settings, parse_size
from pipeline.errors import ConfigError


def test_precedence_flag_over_env_over_file_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "slng-bulk.toml"
    config.write_text("concurrency = 3\nmax_create_rps = 2.5\nlanguage = 'de'\n")
    assert load_settings(environment=True).concurrency == 3  # file beats default
    assert load_settings(environment=True).retries == 6  # default
    monkeypatch.setenv("SLNG_BULK_CONCURRENCY", "5")
    assert load_settings(environment=True).concurrency == 5  # env beats file
    assert load_settings(environment=True, concurrency=7).concurrency == 7  # flag beats env
    settings = load_settings(environment=True)
    assert settings.max_create_rps == 2.5 and settings.job_defaults().transcription_config.language == "de"


def test_a_library_callers_settings_are_its_arguments_unless_it_opts_into_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slng-bulk.toml").write_text("concurrency = 3\n")  # the working folder's config file
    monkeypatch.setenv("SLNG_BULK_RETRIES", "2")
    monkeypatch.setenv("SLNG_API_KEY", "sk-someone-elses-0123")
    alone = load_settings(language="fr")
    assert (alone.concurrency, alone.retries, alone.api_key) == (8, 6, None)
    assert alone.job_defaults().transcription_config.language == "fr"
    opted_in = load_settings(environment=True, language="fr")
    assert (opted_in.concurrency, opted_in.retries) == (3, 2)
    named = tmp_path / "named.toml"
    named.write_text("chunk_size = '2MiB'\n")
    from_file = load_settings(config=named)  # a file the caller names is read, the environment still not
    assert (from_file.chunk_size, from_file.retries) == (2 * 1024 * 1024, 6)
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_settings(config=tmp_path / "missing.toml")


def test_explicit_config_file_and_missing_one(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("chunk_size = '2MiB'\n")
    assert load_settings(environment=True, config=other).chunk_size == 2 * 1024 * 1024
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(environment=True, config=tmp_path / "nope.toml")


def test_invalid_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        load_settings(environment=True, concurrency=0)
    monkeypatch.setenv("SLNG_BULK_CONCURRENCY", "many")
    with pytest.raises(ConfigError, match="concurrency"):
        load_settings(environment=True)
    with pytest.raises(ConfigError, match="diarization"):
        load_settings(environment=True, diarization="loud")
    with pytest.raises(ConfigError, match="max_bandwidth"):
        load_settings(environment=True, max_bandwidth="fast")


def test_unknown_key_in_config_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "slng-bulk.toml").write_text("concurency = 3\n")
    with pytest.raises(ConfigError, match="concurency"):
        load_settings(environment=True)


def test_api_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    assert load_settings(environment=True, api_key_file=key_file).api_key.get_secret_value() == "sk-from-file"  # type: ignore[union-attr]
    monkeypatch.setenv("SLNG_API_KEY", "sk-from-env")
    assert load_settings(environment=True).api_key.get_secret_value() == "sk-from-env"  # type: ignore[union-attr]
    assert "sk-from-env" not in repr(load_settings(environment=True))


def test_comma_lists_from_env_and_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLNG_BULK_TAGS", "calls, support")
    assert load_settings(environment=True).tags == ["calls", "support"]
    assert parse_size("50M") == 50_000_000
    assert parse_size("1MiB") == 1024 * 1024
    assert parse_size("512k") == 512_000
    assert parse_size(4096) == 4096
