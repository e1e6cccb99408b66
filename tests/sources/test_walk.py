"""Directory walks: sorted, lazy, globbed, safe from symlink loops."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline.sources.readers import (
    SourceOptions,
    iter_rows,
)
from pipeline.sources.rows import FileSpec, Rejection
from tests.sources.helpers import DEFAULTS, audio, only_rejection, rejections, rows, specs, tree

# --- directories --------------------------------------------------------------------------------------


def test_directory_walk_is_sorted_recursive_and_case_insensitive(tmp_path: Path) -> None:
    root = tree(tmp_path / "in")
    result = rows(root)
    assert not rejections(result)  # non-audio files are silently skipped
    assert [s.relative_path for s in specs(result)] == [
        "B.MP3",
        "a.wav",
        "c.Flac",
        "sub/d.ogg",
        "sub/deeper/e.m4a",
        "sub/skip/f.wav",
        "zz/g.mp4",
    ]
    first = specs(result)[0]
    assert (first.source, first.line, first.path) == (str(root), None, root / "B.MP3")
    assert all(s.settings is DEFAULTS for s in specs(result))


def test_directory_include_exclude(tmp_path: Path) -> None:
    root = tree(tmp_path / "in")

    def rels(**options: Any) -> list[str]:
        return [s.relative_path for s in specs(rows(root, **options))]

    assert rels(include=("*.wav",)) == ["a.wav", "sub/skip/f.wav"]
    assert rels(include=("sub/*",)) == ["sub/d.ogg", "sub/deeper/e.m4a", "sub/skip/f.wav"]
    assert rels(include=("*.ogg", "*.MP3")) == ["B.MP3", "sub/d.ogg"]
    assert rels(exclude=("skip",)) == [
        "B.MP3",
        "a.wav",
        "c.Flac",
        "sub/d.ogg",
        "sub/deeper/e.m4a",
        "zz/g.mp4",
    ]
    assert rels(exclude=("sub/", "zz/*")) == ["B.MP3", "a.wav", "c.Flac"]
    assert rels(include=("sub/*",), exclude=("*/deeper/*",)) == ["sub/d.ogg", "sub/skip/f.wav"]
    assert rels(exclude=("[ab]*",)) == [
        "B.MP3",
        "c.Flac",
        "sub/d.ogg",
        "sub/deeper/e.m4a",
        "sub/skip/f.wav",
        "zz/g.mp4",
    ]


def test_directory_bad_audio_files_are_rejections(tmp_path: Path) -> None:
    root = tmp_path / "in"
    audio(root, "ok.wav", 10)
    audio(root, "empty.wav", 0)
    audio(root, "big.wav", 50)
    (root / "dir.wav").mkdir()
    os.mkfifo(root / "pipe.wav")
    result = rows(root, max_file_bytes=49)
    assert [s.relative_path for s in specs(result)] == ["ok.wav"]
    assert [(r.path, r.reason) for r in rejections(result)] == [
        (str(root / "big.wav"), "file too large (50 bytes, limit 49)"),
        (str(root / "empty.wav"), "empty file (0 bytes)"),
        (str(root / "pipe.wav"), "not a regular file (a FIFO)"),
    ]
    assert (
        rejections(result)[0].message() == f"{root}: {root / 'big.wav'}: file too large (50 bytes, limit 49)"
    )


def test_directory_symlinks_not_followed_by_default(tmp_path: Path) -> None:
    root = tmp_path / "in"
    audio(root, "a.wav")
    outside = audio(tmp_path, "outside/o.wav")
    (root / "link.wav").symlink_to(outside)
    (root / "linkdir").symlink_to(outside.parent)
    (root / "loop").symlink_to(root)
    assert [s.relative_path for s in specs(rows(root))] == ["a.wav"]
    followed = rows(root, follow_symlinks=True)
    assert [s.relative_path for s in specs(followed)] == ["a.wav", "link.wav", "linkdir/o.wav"]
    assert not rejections(followed)  # "loop" points at the root: skipped, the walk ends


def test_directory_symlink_loops_terminate(tmp_path: Path) -> None:
    root = tmp_path / "in"
    audio(root, "a/x.wav")
    audio(root, "b/y.wav")
    (root / "a" / "to_b").symlink_to(root / "b")
    (root / "b" / "to_a").symlink_to(root / "a")
    (root / "a" / "self").symlink_to(".")
    (root / "b" / "up").symlink_to("..")
    (root / "broken.wav").symlink_to(root / "nowhere.wav")
    result = rows(root, follow_symlinks=True)
    # Each directory is walked once, whichever link reaches it first.
    assert [s.relative_path for s in specs(result)] == ["a/to_b/y.wav", "a/x.wav"]
    assert [(r.path, r.reason) for r in rejections(result)] == [
        (str(root / "broken.wav"), "broken symbolic link")
    ]


def test_directory_source_relative_and_trailing_slash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio(tmp_path, "in/sub/a.wav")
    monkeypatch.chdir(tmp_path)
    (spec,) = specs(rows("in/"))
    assert (spec.source, spec.path, spec.relative_path) == ("in/", tmp_path / "in/sub/a.wav", "sub/a.wav")


def test_single_audio_file_source(tmp_path: Path) -> None:
    a = audio(tmp_path, "x/a.WAV")
    audio(tmp_path, "x/empty.wav", 0)
    (spec, bad) = rows(a, tmp_path / "x/empty.wav")
    assert isinstance(spec, FileSpec) and (spec.path, spec.relative_path) == (a, "a.WAV")
    assert isinstance(bad, Rejection) and bad.reason == "empty file (0 bytes)"


def test_directory_walk_is_lazy(tmp_path: Path) -> None:
    root = tmp_path / "in"
    audio(root, "a/1.wav")
    audio(root, "b/2.wav")
    produced = iter_rows([str(root)], DEFAULTS, SourceOptions())
    assert isinstance(next(produced), FileSpec)
    shutil.rmtree(root / "b")  # not listed yet: the walk must not have read it
    assert list(produced) == []


def test_non_utf8_file_name_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "in"
    audio(root, "ok.wav")
    bad_name = os.fsdecode(b"caf\xe9.wav")
    (root / bad_name).write_bytes(b"x")
    result = rows(root)
    assert [s.relative_path for s in specs(result)] == ["ok.wav"]
    bad = only_rejection(result)
    assert bad.reason == "file name is not valid UTF-8"
    assert bad.message().isprintable() and "caf\\udce9.wav" in bad.message()  # printable in any log
