"""Shared helpers for the source tests: real files, real manifests, rows collected."""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.api.models import TranscriptionConfig
from pipeline.sources.readers import (
    SourceOptions,
    iter_rows,
)
from pipeline.sources.rows import FileSpec, JobSettings, Rejection, Row

SAMPLES = Path(__file__).resolve().parents[2] / "sample_manifests"
DEFAULTS = JobSettings(transcription_config=TranscriptionConfig(language="en"))


def audio(root: Path, rel: str, size: int = 64) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x01" * size)
    return path


def rows(*sources: str | Path, defaults: JobSettings = DEFAULTS, **options: Any) -> list[Row]:
    return list(iter_rows([str(s) for s in sources], defaults, SourceOptions(**options)))


def specs(result: list[Row]) -> list[FileSpec]:
    return [r for r in result if isinstance(r, FileSpec)]


def rejections(result: list[Row]) -> list[Rejection]:
    return [r for r in result if isinstance(r, Rejection)]


def only_rejection(result: list[Row]) -> Rejection:
    bad = rejections(result)
    assert len(bad) == 1, [r.message() for r in bad]
    return bad[0]


def assert_one_line(rejection: Rejection) -> None:
    message = rejection.message()
    unsafe = {"Cc", "Zl", "Zp", "Cs"}  # control, line/paragraph separators, lone surrogates
    assert not [c for c in message if unicodedata.category(c) in unsafe], message
    assert len(rejection.reason) < 300, rejection.reason


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def csv_case(tmp_path: Path, header: str, bad_line: str, options: dict[str, Any] | None = None) -> Rejection:
    """A manifest with a good row, the bad row, a good row: both good rows must still come through."""
    audio(tmp_path, "good1.wav")
    audio(tmp_path, "good2.wav")
    columns = header.count(",") + 1
    pad = "," * (columns - 1)
    manifest = write(tmp_path / "m.csv", f"{header}\ngood1.wav{pad}\n{bad_line}\ngood2.wav{pad}\n")
    result = rows(manifest, **(options or {}))
    assert [s.relative_path for s in specs(result)] == ["good1.wav", "good2.wav"]
    bad = only_rejection(result)
    assert bad.line == 3 and bad.source == str(manifest)
    assert_one_line(bad)
    return bad


def tree(root: Path) -> Path:
    for rel in [
        "a.wav",
        "B.MP3",
        "c.Flac",
        "notes.txt",
        "noext",
        ".hidden.wav",
        ".hiddendir/x.wav",
        "sub/d.ogg",
        "sub/deeper/e.m4a",
        "sub/skip/f.wav",
        "zz/g.mp4",
    ]:
        audio(root, rel)
    return root


def run_unprivileged(job: Callable[[], list[str]]) -> list[str]:
    """Run `job` as uid 65534 in a forked child when we are root, else directly."""
    if os.geteuid() != 0:
        return job()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            payload = json.dumps(job()).encode()
        except BaseException as exc:
            payload = json.dumps(["ERROR", repr(exc)]).encode()
            status = 1
        with os.fdopen(write_end, "wb") as out:
            out.write(payload)
        os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return list(json.loads(data))
