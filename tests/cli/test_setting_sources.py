"""Every setting accepts the same values as a flag, an environment variable and a config-file key.

The fields are read from the settings model, so a new setting is covered (or fails here for want of a
sample value) without anyone remembering to add it.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, Literal

import click
import pytest
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from pipeline.cli.app import main
from pipeline.config.settings import ENV_PREFIX, Settings, load_settings, parse_size
from tests.support.audio import write_wav
from tests.support.runs import run_cli

SIZE_SAMPLES = ("1M", "50M", "512K", "1048576")


def _is_size(field: FieldInfo) -> bool:
    return any(getattr(m, "func", None) is parse_size for m in field.metadata)


def _base_type(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        return _base_type(typing.get_args(annotation)[0])
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _base_type(args[0])
    return annotation


def samples(name: str, field: FieldInfo, tmp_path: Path) -> list[str]:
    """Raw texts this setting must accept, whatever the source."""
    base = _base_type(field.annotation)
    if _is_size(field):
        return list(SIZE_SAMPLES)
    if typing.get_origin(base) is Literal:
        return [str(choice) for choice in typing.get_args(base)]
    if base is bool:
        return ["true", "false"]
    if base is int:
        return ["3"]
    if base is float:
        return ["2.5", "7"]
    if base is SecretStr:
        return ["sk-test-0123456789"]
    if base is Path:
        target = tmp_path / f"{name}.input"  # a real file: the key file and the config file are read
        target.write_text("sk-from-a-file\n" if name == "api_key_file" else "")
        return [str(target)]
    if name == "path_map":
        return ["/mnt/a=/data/a,/mnt/b=/data/b", "/=/srv"]
    if name == "shard":
        return ["2/4", "1/1"]
    if name == "metrics_addr":
        return ["127.0.0.1:9464", "localhost:0"]
    if name == "extra":
        return ['{"summarization": true, "translation_config": {"target_languages": ["de"]}}']
    if typing.get_origin(base) is list:
        return ["json,TXT", "srt"] if name == "formats" else ["alpha,beta", "gamma"]
    if base is str:
        return ["https://api.example.test" if name == "api_url" else "xyz"]
    raise AssertionError(f"no sample value for setting {name} ({field.annotation}): add one here")


def _command_offering(name: str) -> click.Command:
    flag = "--" + name.replace("_", "-")
    for command in main.commands.values():
        for param in command.params:
            if isinstance(param, click.Option) and flag in param.opts:
                return command
    raise AssertionError(f"no command offers {flag}")


def from_flag(name: str, raw: str) -> Settings:
    """Parse `--flag raw` with the real command's parser, then load settings from what it gave."""
    command = _command_offering(name)
    flag = "--" + name.replace("_", "-")
    args = ([flag] if raw == "true" else [f"--no-{flag[2:]}"]) if raw in ("true", "false") else [flag, raw]
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            args.append("placeholder")
    with command.make_context(command.name, args) as ctx:
        flags = {k: v for k, v in ctx.params.items() if k in Settings.model_fields}
    return load_settings(environment=True, **flags)


def from_env(name: str, raw: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    with monkeypatch.context() as env:
        env.setenv(f"{ENV_PREFIX}{name.upper()}", raw)
        return load_settings(environment=True)


def from_config(name: str, raw: str, tmp_path: Path) -> Settings:
    config = tmp_path / "settings-under-test.toml"
    value = raw if raw in ("true", "false") else json.dumps(raw)  # a JSON string is a TOML string
    config.write_text(f"{name} = {value}\n")
    return load_settings(environment=True, config=config)


FIELDS = sorted(Settings.model_fields.items())


@pytest.mark.parametrize(("name", "field"), FIELDS, ids=[name for name, _ in FIELDS])
def test_flag_env_and_config_key_parse_to_the_same_value(
    name: str, field: FieldInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for raw in samples(name, field, tmp_path):
        flag_value = getattr(from_flag(name, raw), name)
        env_value = getattr(from_env(name, raw, monkeypatch), name)
        assert flag_value == env_value, f"{name}={raw!r}: flag gave {flag_value!r}, env {env_value!r}"
        if name == "config":
            continue  # `config` names the file itself: as a key inside that file it cannot take effect
        file_value = getattr(from_config(name, raw, tmp_path), name)
        assert flag_value == file_value, f"{name}={raw!r}: flag gave {flag_value!r}, file {file_value!r}"


@pytest.mark.parametrize("name", [name for name, field in FIELDS if _is_size(field)])
def test_size_settings_take_units_and_plain_bytes_everywhere(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = {"1M": 1_000_000, "50M": 50_000_000, "512K": 512_000, "1048576": 1_048_576}
    for raw, value in expected.items():
        assert getattr(from_flag(name, raw), name) == value
        assert getattr(from_env(name, raw, monkeypatch), name) == value
        assert getattr(from_config(name, raw, tmp_path), name) == value
    config = tmp_path / "native.toml"
    config.write_text(f"{name} = 1048576\n")  # a TOML integer as well as a string
    assert getattr(load_settings(environment=True, config=config), name) == 1_048_576


def test_size_flags_work_on_the_real_command_line(tmp_path: Path) -> None:
    write_wav(tmp_path / "audio" / "a.wav")
    result = run_cli(
        "submit",
        "--dry-run",
        "--max-bandwidth",
        "50M",
        "--chunk-size",
        "1M",
        str(tmp_path / "audio"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "1 valid file," in result.stdout
