"""--include/--exclude as --help says: `*` stays within a name, `**` spans folders, a bare name
matches a file or folder at any depth (a folder takes its files), a pattern with '/' is anchored;
a pattern that matches nothing is warned of; skipped links and dot-files are counted. And -0:
NUL-separated paths on stdin, taken exactly."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from pipeline.sources.checks import SourceOptions, WalkTally
from pipeline.sources.lines import LINE_LIMIT_BYTES, null_records
from pipeline.sources.readers import iter_rows
from pipeline.sources.rows import FileSpec, Rejection
from pipeline.sources.walk import compile_globs
from tests.sources.helpers import DEFAULTS, audio


def rels(root: Path, **options: object) -> list[str]:
    found = iter_rows([str(root)], DEFAULTS, SourceOptions(**options))  # type: ignore[arg-type]
    return [row.relative_path for row in found if isinstance(row, FileSpec)]


@pytest.fixture
def dated(tmp_path: Path) -> Path:
    root = tmp_path / "calls"
    for rel in ("2026-01-01/a.wav", "2026-01-01/late/b.wav", "2026-01-02/c.wav", "top.wav"):
        audio(root, rel)
    return root


def test_a_star_stays_within_one_name(dated: Path) -> None:
    assert rels(dated, include=("2026-01-01/*.wav",)) == ["2026-01-01/a.wav"]
    assert not compile_globs(["2026*wav"])[0].matches("2026-01-02/c.wav")


def test_a_double_star_spans_folders(dated: Path) -> None:
    assert rels(dated, include=("2026-01-01/**/*.wav",)) == ["2026-01-01/a.wav", "2026-01-01/late/b.wav"]
    assert rels(dated, include=("**/b.wav",)) == ["2026-01-01/late/b.wav"]


def test_a_bare_folder_name_takes_that_folders_files(dated: Path) -> None:
    assert rels(dated, include=("2026-01-01",)) == ["2026-01-01/a.wav", "2026-01-01/late/b.wav"]
    assert rels(dated, include=("late",)) == ["2026-01-01/late/b.wav"]
    assert rels(dated, exclude=("2026-01-01",)) == ["2026-01-02/c.wav", "top.wav"]


def test_a_pattern_with_a_slash_is_anchored_at_the_top(dated: Path) -> None:
    assert rels(dated, include=("late/*",)) == []
    assert rels(dated, include=("/top.wav",)) == ["top.wav"]


def test_a_pattern_that_matches_nothing_is_warned_of(dated: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert rels(dated, include=("2025-12-31", "top.wav"), exclude=("*.tmp",)) == ["top.wav"]
    warned = [r.getMessage() for r in caplog.records]
    assert f"2025-12-31 matched nothing under {dated}" in warned
    assert f"*.tmp matched nothing under {dated}" in warned
    assert not any(m.startswith("top.wav") for m in warned)


def test_links_and_dot_files_left_out_are_counted(dated: Path) -> None:
    audio(dated, ".hidden.wav")
    audio(dated, ".cache/x.wav")
    os.symlink(dated / "top.wav", dated / "link.wav")
    tally = WalkTally()
    assert "link.wav" not in rels(dated, tally=tally)
    assert (tally.links, tally.hidden) == (1, 2)


def test_null_records_keep_every_byte_of_a_path() -> None:
    data = b"a b.wav\0line\nbreak.wav\0\0last.wav"
    assert [(n, t, p) for n, t, p in null_records(io.BytesIO(data), chunk=3)] == [
        (1, "a b.wav", None),
        (2, "line\nbreak.wav", None),
        (3, "last.wav", None),
    ]


def test_null_records_refuse_one_bad_record_and_go_on() -> None:
    data = b"\xff.wav\0" + b"x" * (LINE_LIMIT_BYTES + 5) + b"\0ok.wav\0"
    found = list(null_records(io.BytesIO(data)))
    assert [p is None for _, _, p in found] == [False, False, True]
    assert found[0][2] is not None and "invalid UTF-8" in found[0][2]
    assert found[2][1] == "ok.wav"


def test_stdin_with_null_takes_paths_with_newlines(tmp_path: Path) -> None:
    odd = audio(tmp_path, "two\nlines.wav")
    plain = audio(tmp_path, " spaced .wav")
    text = f"{odd}\0{plain}\0"
    found = list(iter_rows(["-"], DEFAULTS, SourceOptions(stdin=io.StringIO(text), null_separated=True)))
    assert not [r for r in found if isinstance(r, Rejection)]
    assert [r.path_text for r in found if isinstance(r, FileSpec)] == [str(odd), str(plain)]
