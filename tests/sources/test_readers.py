"""Source dispatch: whole-source problems, the sample manifests, and properties over any input."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.sources.readers import (
    JSONL_KEYS,
    ManifestError,
    SourceOptions,
    check_sources,
    iter_rows,
)
from pipeline.sources.rows import FileSpec, Rejection
from tests.sources.helpers import DEFAULTS, SAMPLES, assert_one_line, audio, rejections, rows, specs, write

# --- whole-manifest problems ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"path,langauge\na.wav,fr\n", 'CSV header: unknown column "langauge" (allowed: path, job_id'),
        (b"language\nfr\n", "CSV header: required column 'path' (or 'url') is missing"),
        (b"path,path\n", 'CSV header: duplicate column "path"'),
        (b"path,,language\n", "CSV header: column 2 has no name"),
        (b"", "empty manifest (no CSV header row)"),
        (b"\n\n", "empty manifest (no CSV header row)"),
        (b"pa\xffth\n", "CSV header (line 1): invalid UTF-8"),
    ],
)
def test_csv_bad_header_is_a_manifest_error_before_any_row(
    tmp_path: Path, content: bytes, message: str
) -> None:
    manifest = write(tmp_path / "m.csv", content)
    with pytest.raises(ManifestError) as caught:
        check_sources([str(manifest)])
    assert str(caught.value).startswith(f"{manifest}: {message}")
    assert "\n" not in str(caught.value)
    with pytest.raises(ManifestError):
        next(iter_rows([str(manifest)], DEFAULTS, SourceOptions()))


def test_check_sources_stops_before_any_row_of_any_source(tmp_path: Path) -> None:
    audio(tmp_path, "a.wav")
    good = write(tmp_path / "good.csv", "path\na.wav\n")
    bad = write(tmp_path / "bad.csv", "path,colour\na.wav,red\n")
    with pytest.raises(ManifestError, match='unknown column "colour"'):
        check_sources([str(good), str(bad)])
    # iter_rows itself is lazy per source: the first source's rows come before the error.
    produced = iter_rows([str(good), str(bad)], DEFAULTS, SourceOptions())
    assert isinstance(next(produced), FileSpec)
    with pytest.raises(ManifestError, match=r"bad\.csv: CSV header: unknown column"):
        next(produced)


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.csv", "no such file or directory"), ("notes.txt", "not a manifest (.csv, .jsonl, .ndjson)")],
)
def test_unusable_sources(tmp_path: Path, name: str, message: str) -> None:
    if name == "notes.txt":
        write(tmp_path / name, "hello\n")
    source = str(tmp_path / name)
    with pytest.raises(ManifestError, match=re.escape(message)):
        check_sources([source])
    with pytest.raises(ManifestError, match=re.escape(message)):
        rows(source)


def test_check_sources_never_reads_a_fifo_manifest(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "m.csv")
    os.mkfifo(tmp_path / "m.jsonl")
    check_sources([str(tmp_path / "m.csv"), str(tmp_path / "m.jsonl"), "-"])  # would block if it opened them


def test_check_sources_accepts_all_kinds(tmp_path: Path) -> None:
    check_sources([str(SAMPLES / "demo.csv"), str(SAMPLES / "demo.jsonl"), str(SAMPLES / "audio"), "-"])
    check_sources([str(SAMPLES / "audio" / "greeting.wav")])


# --- sample manifests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["demo.csv", "demo.jsonl", "audio"])
def test_sample_manifests_are_all_valid(name: str) -> None:
    result = rows(SAMPLES / name)
    assert len(result) == 5
    assert not rejections(result), [r.message() for r in rejections(result)]
    assert {s.path.name for s in specs(result)} == {
        "greeting.wav",
        "standup.wav",
        "interview.wav",
        "call-001.wav",
        "call-002.wav",
    }


# --- properties -------------------------------------------------------------------------------------------

_LINE_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
_CSV_HEADERS = st.sampled_from(["path", "path,language", "path,job_id,tags,metadata", "language,path,colour"])
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_JSON_OBJECTS = st.dictionaries(
    st.sampled_from([*JSONL_KEYS, "language", "x"]) | st.text(max_size=6), _JSON_VALUES, max_size=5
)
_PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _consume(manifest: Path) -> None:
    try:
        for row in iter_rows([str(manifest)], DEFAULTS, SourceOptions()):
            assert isinstance(row, FileSpec | Rejection)
            if isinstance(row, Rejection):
                assert_one_line(row)
    except ManifestError as exc:
        assert "\n" not in str(exc)


@_PROPERTY_SETTINGS
@given(header=_CSV_HEADERS, lines=st.lists(_LINE_TEXT, max_size=8))
def test_property_arbitrary_csv_lines(header: str, lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write(Path(tmp) / "m.csv", "\n".join([header, *lines]))
        audio(Path(tmp), "a.wav")
        _consume(manifest)


@_PROPERTY_SETTINGS
@given(data=st.binary(max_size=300))
def test_property_arbitrary_bytes_as_manifests(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("m.csv", "m.jsonl"):
            _consume(write(Path(tmp) / name, data))


@_PROPERTY_SETTINGS
@given(lines=st.lists(_JSON_OBJECTS.map(json.dumps) | _LINE_TEXT, max_size=8))
def test_property_arbitrary_jsonl_lines(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        audio(Path(tmp), "a.wav")
        _consume(write(Path(tmp) / "m.jsonl", "\n".join(lines)))
