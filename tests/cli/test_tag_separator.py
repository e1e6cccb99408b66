"""One tag separator, the comma, for the --tags flag, SLNG_BULK_TAGS, the config file and the CSV
`tags` column; a JSON list in the CSV cell (or a TOML list) for tags that contain a comma."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli.app import main
from pipeline.config.settings import load_settings
from pipeline.errors import ExitCode
from pipeline.sources.readers import SourceOptions, iter_rows
from pipeline.sources.rows import FileSpec, Rejection, Row
from tests.support.audio import write_wav
from tests.support.runs import run_cli

SAMPLES = Path(__file__).resolve().parents[2] / "sample_manifests"


def csv_rows(tmp_path: Path, cell: str) -> list[Row]:
    write_wav(tmp_path / "a.wav")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,tags\na.wav,{cell}\n")
    return list(iter_rows([str(manifest)], load_settings(environment=True).job_defaults(), SourceOptions()))


def csv_tags(tmp_path: Path, cell: str) -> list[str]:
    [row] = csv_rows(tmp_path, cell)
    assert isinstance(row, FileSpec), row.message() if isinstance(row, Rejection) else row
    assert row.settings.tracking is not None
    return list(row.settings.tracking.tags or [])


def flag_tags(text: str) -> list[str]:
    command = main.commands["submit"]
    with command.make_context("submit", ["--tags", text, "placeholder"]) as ctx:
        settings = load_settings(environment=True, tags=ctx.params["tags"])
    tracking = settings.job_defaults().tracking
    assert tracking is not None
    return list(tracking.tags or [])


def test_flag_environment_config_and_csv_split_tags_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = ["demo", "short"]
    assert flag_tags("demo,short") == expected
    with monkeypatch.context() as env:
        env.setenv("SLNG_BULK_TAGS", "demo, short")
        assert load_settings(environment=True).tags == expected
    (tmp_path / "c.toml").write_text('tags = "demo,short"\n')
    assert load_settings(environment=True, config=tmp_path / "c.toml").tags == expected
    assert csv_tags(tmp_path, '"demo,short"') == expected
    assert csv_tags(tmp_path, '" demo , short ,"') == expected


def test_a_json_list_keeps_commas_inside_tags(tmp_path: Path) -> None:
    assert csv_tags(tmp_path, '"[""a,b"", ""c;d""]"') == ["a,b", "c;d"]
    (tmp_path / "c.toml").write_text('tags = ["a,b", "c"]\n')
    assert load_settings(environment=True, config=tmp_path / "c.toml").tags == ["a,b", "c"]


def test_a_semicolon_list_in_a_csv_cell_is_refused_with_the_rule(tmp_path: Path) -> None:
    [row] = csv_rows(tmp_path, "demo;short")
    assert isinstance(row, Rejection)
    assert "tags" in row.reason and "comma" in row.reason


def test_a_semicolon_list_as_a_flag_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("submit", "--dry-run", "--tags", "demo;short", ".", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "--tags" in result.stderr and "comma" in result.stderr


def test_the_demo_manifest_uses_the_separator() -> None:
    rows = list(
        iter_rows(
            [str(SAMPLES / "demo.csv")], load_settings(environment=True).job_defaults(), SourceOptions()
        )
    )
    tags = [row.settings.tracking.tags for row in rows if isinstance(row, FileSpec) and row.settings.tracking]
    assert ["demo", "short"] in tags and ["demo", "meeting"] in tags
