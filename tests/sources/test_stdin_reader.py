"""stdin: paths and JSON objects, read lazily."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from pipeline.sources.readers import (
    SourceOptions,
    iter_rows,
)
from pipeline.sources.rows import Rejection
from tests.sources.helpers import DEFAULTS, audio, only_rejection, rejections, rows, specs

# --- stdin ----------------------------------------------------------------------------------------------


def test_stdin_paths_and_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = audio(tmp_path, "a.wav")
    b = audio(tmp_path, "d/b.wav")
    monkeypatch.chdir(tmp_path)
    stream = io.StringIO(
        f"a.wav\n\n  {b}  \n"
        '{"path": "d/b.wav", "transcription_config": {"language": "fr"}, "job_id": "x1"}\n'
        "missing.wav\n"
        '{"path": "a.wav", "bogus": 1}\n'
    )
    result = rows("-", stdin=stream)
    got = [(r.line, r.path, r.relative_path, r.job_id) for r in specs(result)]
    assert got == [(1, a, "a.wav", None), (3, b, "d/b.wav", None), (4, b, "d/b.wav", "x1")]
    assert specs(result)[0].settings is DEFAULTS
    assert specs(result)[2].settings.transcription_config.language == "fr"
    assert [r.message() for r in rejections(result)] == [
        f"-:5: {tmp_path / 'missing.wav'}: file not found",
        f'-:6: {a}: unknown key "bogus" (allowed: path, job_id, transcription_config, tracking, '
        "output_config, metadata, model_code, extra, url)",
    ]


def test_stdin_default_is_sys_stdin_read_as_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audio(tmp_path, "a.wav")
    audio(tmp_path, "b.wav")
    monkeypatch.chdir(tmp_path)
    raw = io.BytesIO(b"a.wav\nbad\xff.wav\nb\x00.wav\nb.wav\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw, encoding="utf-8"))
    result = rows("-")
    assert [s.relative_path for s in specs(result)] == ["a.wav", "b.wav"]
    assert [r.message() for r in rejections(result)] == [
        "-:2: invalid UTF-8 (byte 4 of the line)",
        "-:3: NUL byte in line",
    ]


def test_stdin_text_stream_with_undecodable_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audio(tmp_path, "a.wav")
    monkeypatch.chdir(tmp_path)
    stream = io.TextIOWrapper(io.BytesIO(b"bad\xff.wav\na.wav\n"), encoding="utf-8", errors="surrogateescape")
    result = rows("-", stdin=stream)
    assert [s.relative_path for s in specs(result)] == ["a.wav"]
    assert only_rejection(result).reason == "invalid UTF-8"


def test_stdin_is_read_lazily() -> None:
    stream = io.StringIO("".join(f"/nonexistent/{i}.wav\n" for i in range(10_000)))
    produced = iter_rows(["-"], DEFAULTS, SourceOptions(stdin=stream))
    first = next(produced)
    assert isinstance(first, Rejection) and first.line == 1
    assert stream.tell() < 1000
