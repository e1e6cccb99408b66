"""Sources: manifests, directories and stdin become FileSpec / Rejection rows, on real files."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.api.models import DEFAULT_MODEL_CODE, TranscriptionConfig
from pipeline.sources.readers import (
    CSV_COLUMNS,
    JSONL_KEYS,
    LINE_LIMIT_BYTES,
    ManifestError,
    SourceOptions,
    check_sources,
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


# --- CSV ------------------------------------------------------------------------------------------------


def test_csv_every_column(tmp_path: Path) -> None:
    a = audio(tmp_path, "audio/a.wav", 10)
    audio(tmp_path, "audio/sub/b.MP3", 20)
    header = ",".join(CSV_COLUMNS)
    vocab = '"[{""content"": ""SLNG"", ""sounds_like"": [""sling""]}]"'
    manifest = write(
        tmp_path / "m.csv",
        f"\ufeff{header}\n"
        f"audio/a.wav,job1,fr,enhanced,speaker,medical,fr-FR,yes,{vocab},Title,ref-1,a; b ;,details,"
        f'"{{""k"": 1}}",{DEFAULT_MODEL_CODE},42,2\n'
        "audio/sub/b.MP3,,,,,,,,,,,,,,,,\n",
    )
    check_sources([str(manifest)])
    first, second = rows(manifest)
    assert isinstance(first, FileSpec) and isinstance(second, FileSpec)
    assert first.source == str(manifest) and first.line == 2 and second.line == 3
    assert first.path == a and first.path.is_absolute()
    assert (first.size, first.mtime_ns) == (10, a.stat().st_mtime_ns)
    assert first.job_id == "job1" and second.job_id is None
    assert first.relative_path == "audio/a.wav" and second.relative_path == "audio/sub/b.MP3"
    dumped = first.settings.model_dump(exclude_none=True)
    assert dumped == {
        "transcription_config": {
            "language": "fr",
            "operating_point": "enhanced",
            "diarization": "speaker",
            "domain": "medical",
            "output_locale": "fr-FR",
            "enable_entities": True,
            "additional_vocab": [{"content": "SLNG", "sounds_like": ["sling"]}],
        },
        "tracking": {"title": "Title", "reference": "ref-1", "tags": ["a", "b"], "details": "details"},
        "output_config": {"srt_overrides": {"max_line_length": 42, "max_lines": 2}},
        "model_code": DEFAULT_MODEL_CODE,
        "metadata": {"k": 1},
    }
    assert second.settings is DEFAULTS  # nothing overridden: the same object, no pydantic work


@pytest.mark.parametrize(("cell", "expected"), [("true", True), ("1", True), ("YES", True), ("no", False)])
def test_csv_enable_entities_spellings(tmp_path: Path, cell: str, expected: bool) -> None:
    audio(tmp_path, "a.wav")
    manifest = write(tmp_path / "m.csv", f"path,enable_entities\na.wav,{cell}\n")
    (spec,) = specs(rows(manifest))
    assert spec.settings.transcription_config.enable_entities is expected


def test_csv_tags_as_json_list(tmp_path: Path) -> None:
    audio(tmp_path, "a.wav")
    manifest = write(tmp_path / "m.csv", 'path,tags\na.wav,"[""x;y"", ""z""]"\n')
    (spec,) = specs(rows(manifest))
    assert spec.settings.tracking is not None and spec.settings.tracking.tags == ["x;y", "z"]


def test_csv_settings_merge_over_defaults_and_are_shared(tmp_path: Path) -> None:
    for name in "abc":
        audio(tmp_path, f"{name}.wav")
    defaults = JobSettings.model_validate(
        {"transcription_config": {"language": "en", "operating_point": "enhanced"}, "metadata": {"run": 1}}
    )
    manifest = write(tmp_path / "m.csv", "path,language,title\na.wav,fr,\nb.wav,fr,\nc.wav,,T\n")
    a, b, c = specs(rows(manifest, defaults=defaults))
    assert a.settings is b.settings  # identical overrides share one object
    tc = a.settings.transcription_config
    assert (tc.language, tc.operating_point) == ("fr", "enhanced")
    assert a.settings.metadata == {"run": 1}
    assert c.settings.transcription_config.language == "en"
    assert c.settings.tracking is not None and c.settings.tracking.title == "T"


def test_csv_header_is_case_and_space_insensitive_and_skips_blank_rows(tmp_path: Path) -> None:
    audio(tmp_path, "a.wav")
    audio(tmp_path, "b.wav")
    manifest = write(tmp_path / "m.csv", "\r\n Path , Language\r\na.wav,fr\r\n\r\n,\r\n  b.wav  ,\r\n")
    result = rows(manifest)
    assert [(r.line, r.relative_path) for r in specs(result)] == [(3, "a.wav"), (6, "b.wav")]
    assert not rejections(result)


def test_csv_line_numbers_count_physical_lines_of_multiline_records(tmp_path: Path) -> None:
    audio(tmp_path, "a.wav")
    audio(tmp_path, "b.wav")
    manifest = write(tmp_path / "m.csv", 'path,details\na.wav,"two\nlines"\nb.wav,x\nmissing.wav,\n')
    result = rows(manifest)
    assert [r.line for r in result] == [2, 4, 5]
    assert isinstance(result[2], Rejection) and result[2].reason == "file not found"


def test_csv_relative_paths_resolve_against_the_manifest_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = audio(tmp_path, "lists/audio/x.wav")
    outside = audio(tmp_path, "elsewhere/y.wav")
    manifest = write(
        tmp_path / "lists/m.csv",
        f"path\naudio/x.wav\n./audio/../audio/x.wav\n../elsewhere/y.wav\n{outside}\n{inside}\n",
    )
    monkeypatch.chdir(tmp_path / "elsewhere")  # the current directory must not matter
    result = specs(rows(os.path.relpath(manifest)))
    assert [r.path for r in result] == [inside, inside, outside, outside, inside]
    stripped = str(outside).lstrip("/")
    assert [r.relative_path for r in result] == [
        "audio/x.wav",
        "audio/x.wav",
        stripped,
        stripped,
        "audio/x.wav",
    ]
    assert result[0].source == os.path.relpath(manifest)


def test_paths_are_normalised_but_symlinks_not_resolved(tmp_path: Path) -> None:
    real = audio(tmp_path, "real/a.wav")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    manifest = write(tmp_path / "m.csv", "path\nlink//./a.wav\n")
    (spec,) = specs(rows(manifest))
    assert spec.path == tmp_path / "link" / "a.wav"
    assert spec.path.resolve() == real.resolve()


# --- bad rows (CSV): each has its own reason and does not stop the others ------------------------------


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


def test_csv_missing_path(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,language", ",fr")
    assert bad.message() == f"{tmp_path / 'm.csv'}:3: missing path"


def test_csv_file_not_found(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path", "nope.wav")
    assert bad.message() == f"{tmp_path / 'm.csv'}:3: {tmp_path / 'nope.wav'}: file not found"


def test_csv_parent_is_a_file(tmp_path: Path) -> None:
    audio(tmp_path, "f.wav")
    assert csv_case(tmp_path, "path", "f.wav/x.wav").reason.startswith("file not found")


def test_csv_directory(tmp_path: Path) -> None:
    (tmp_path / "d.wav").mkdir()
    bad = csv_case(tmp_path, "path", "d.wav")
    assert (bad.path, bad.reason) == (str(tmp_path / "d.wav"), "is a directory")


def test_csv_fifo_is_rejected_without_opening_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.wav")  # opening it would block this test forever
    assert csv_case(tmp_path, "path", "pipe.wav").reason == "not a regular file (a FIFO)"


def test_csv_device(tmp_path: Path) -> None:
    assert csv_case(tmp_path, "path", "/dev/null").reason == "not a regular file (a character device)"


def test_csv_empty_file(tmp_path: Path) -> None:
    audio(tmp_path, "empty.wav", 0)
    assert csv_case(tmp_path, "path", "empty.wav").reason == "empty file (0 bytes)"


def test_csv_over_max_file_bytes(tmp_path: Path) -> None:
    audio(tmp_path, "big.wav", 100)
    bad = csv_case(tmp_path, "path", "big.wav", {"max_file_bytes": 99})
    assert bad.reason == "file too large (100 bytes, limit 99)"


def test_csv_unsupported_extension(tmp_path: Path) -> None:
    audio(tmp_path, "notes.txt")
    bad = csv_case(tmp_path, "path", "notes.txt")
    assert bad.reason.startswith("unsupported extension '.txt' (supported: aac, amr, flac, m4a, mp3")


def test_csv_no_extension(tmp_path: Path) -> None:
    audio(tmp_path, "README")
    assert csv_case(tmp_path, "path", "README").reason.startswith("no file extension (supported: ")


def test_csv_bad_enum_names_field_and_allowed_values(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,diarization", "good1.wav,loud")
    assert bad.path == str(tmp_path / "good1.wav")
    assert bad.reason == "diarization: invalid value 'loud' (allowed: 'none', 'speaker' or 'channel')"


def test_csv_bad_operating_point(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,operating_point", "good1.wav,turbo")
    assert bad.reason == "operating_point: invalid value 'turbo' (allowed: 'standard' or 'enhanced')"


@pytest.mark.parametrize(
    ("column", "cell", "reason"),
    [
        (
            "metadata",
            '"{oops"',
            "metadata: malformed JSON (Expecting property name enclosed in double quotes",
        ),
        ("metadata", "[1]", "metadata: expected a JSON object"),
        ("metadata", '"{""x"": NaN}"', "metadata: malformed JSON (NaN is not valid JSON)"),
        ("additional_vocab", "[oops", "additional_vocab: malformed JSON (Expecting value at character 2)"),
        ("additional_vocab", '"{""content"": ""x""}"', "additional_vocab: expected a JSON array"),
        ("additional_vocab", '"[{""sounds"": 1}]"', "additional_vocab[0].content: field required"),
        ("tags", "[oops", "tags: malformed JSON"),
        ("tags", '"[1, 2]"', "tags[0]: input should be a valid string (got 1)"),
    ],
)
def test_csv_malformed_json_cells_name_the_column(
    tmp_path: Path, column: str, cell: str, reason: str
) -> None:
    bad = csv_case(tmp_path, f"path,{column}", f"good1.wav,{cell}")
    assert bad.reason.startswith(reason), bad.reason


def test_csv_bad_boolean(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,enable_entities", "good1.wav,maybe")
    assert bad.reason == "enable_entities: expected true/false/1/0/yes/no, got 'maybe'"


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("0", "srt_max_lines: input should be greater than or equal to 1 (got '0')"),
        ("two", "srt_max_lines: input should be a valid integer, unable to parse string as an integer"),
    ],
)
def test_csv_bad_integer(tmp_path: Path, cell: str, reason: str) -> None:
    bad = csv_case(tmp_path, "path,srt_max_lines", f"good1.wav,{cell}")
    assert bad.reason.startswith(reason), bad.reason


def test_csv_invalid_job_id(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,job_id", "good1.wav,bad-id_1")
    assert bad.reason == "invalid job_id 'bad-id_1': use 1-128 letters and digits"


def test_csv_too_long_job_id(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,job_id", f"good1.wav,{'a' * 129}")
    assert bad.reason.startswith("invalid job_id 'aaaa") and "...:" in bad.reason


def test_csv_unknown_model_code(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,model_code", "good1.wav,acme/whisper:1")
    assert bad.reason == (
        f"model_code: unknown model code 'acme/whisper:1' (supported: {DEFAULT_MODEL_CODE})"
    )


def test_csv_language_too_long_is_truncated_in_reason(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,language", f"good1.wav,{'x' * 500}")
    assert bad.reason.startswith("language: string should have at most 32 characters (got 'xxx")
    assert len(bad.reason) < 200


@pytest.mark.parametrize("line", ["a.wav,fr,extra", "a.wav"])
def test_csv_wrong_number_of_fields(tmp_path: Path, line: str) -> None:
    bad = csv_case(tmp_path, "path,language", line)
    got = line.count(",") + 1
    assert (bad.path, bad.reason) == (None, f"expected 2 fields, got {got}")


def test_csv_invalid_utf8_rejects_only_that_row(tmp_path: Path) -> None:
    audio(tmp_path, "good1.wav")
    audio(tmp_path, "good2.wav")
    manifest = write(
        tmp_path / "m.csv", b"path,title\ngood1.wav,ok\nbad.wav,caf\xe9\ngood2.wav,\xc3\xa9t\xc3\xa9\n"
    )
    result = rows(manifest)
    assert [s.relative_path for s in specs(result)] == ["good1.wav", "good2.wav"]
    tracking = specs(result)[1].settings.tracking
    assert tracking is not None and tracking.title == "été"
    bad = only_rejection(result)
    assert (bad.line, bad.reason) == (3, "invalid UTF-8 (byte 12 of the line)")


def test_csv_nul_byte(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path", "good1\x00.wav")
    assert (bad.path, bad.reason) == (None, "NUL byte in line")


def test_csv_absurdly_long_line(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,details", "good1.wav," + "x" * (LINE_LIMIT_BYTES + 10))
    assert bad.reason == f"line longer than {LINE_LIMIT_BYTES} bytes"


def test_csv_huge_field_spanning_lines(tmp_path: Path) -> None:
    # An unterminated quote swallows the following lines until the csv module's field limit.
    audio(tmp_path, "good1.wav")
    filler = "".join(f"line {i} {'y' * 100}\n" for i in range(1500))
    manifest = write(tmp_path / "m.csv", f'path,details\ngood1.wav,x\ngood1.wav,"{filler}')
    result = rows(manifest)
    assert specs(result)[0].line == 2
    assert any("malformed CSV record: field larger than field limit" in r.reason for r in rejections(result))


def test_csv_control_characters_in_reason_are_escaped(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path", '"a\x1b[2J\nb.wav"')
    assert "\x1b" not in bad.message() and "\n" not in bad.message()
    assert bad.message().endswith("a\\x1b[2J\\nb.wav: file not found")


# --- whole-manifest problems ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"path,langauge\na.wav,fr\n", "CSV header: unknown column 'langauge' (allowed: path, job_id"),
        (b"language\nfr\n", "CSV header: required column 'path' is missing"),
        (b"path,path\n", "CSV header: duplicate column 'path'"),
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
    with pytest.raises(ManifestError, match="unknown column 'colour'"):
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


# --- JSONL -------------------------------------------------------------------------------------------------


def test_jsonl_every_key(tmp_path: Path) -> None:
    a = audio(tmp_path, "a.wav")
    audio(tmp_path, "b.flac")
    full = {
        "path": "a.wav",
        "job_id": "abc123",
        "transcription_config": {
            "language": "de",
            "operating_point": "enhanced",
            "diarization": "channel",
            "domain": "finance",
            "output_locale": "de-DE",
            "enable_entities": False,
            "additional_vocab": [{"content": "SLNG"}],
        },
        "tracking": {"title": "t", "reference": "r", "tags": ["x"], "details": "d"},
        "output_config": {"srt_overrides": {"max_line_length": 30, "max_lines": 1}},
        "metadata": {"nested": {"ok": [1, 2]}},
        "model_code": DEFAULT_MODEL_CODE,
    }
    assert set(full) == set(JSONL_KEYS)
    text = (
        json.dumps(full)
        + "\n\n   \n"
        + json.dumps({"path": "b.flac", "job_id": None, "tracking": None})
        + "\n"
    )
    manifest = write(tmp_path / "sub" / ".." / "m.jsonl", text)
    first, second = rows(manifest)
    assert isinstance(first, FileSpec) and isinstance(second, FileSpec)
    assert (first.line, second.line) == (1, 4)
    assert (first.path, first.job_id, first.relative_path) == (a, "abc123", "a.wav")
    expected = {k: v for k, v in full.items() if k not in ("path", "job_id")}
    expected["transcription_config"]["additional_vocab"] = [{"content": "SLNG"}]  # type: ignore[index]
    assert first.settings.model_dump(exclude_none=True) == expected
    assert second.settings is DEFAULTS and second.job_id is None


def test_ndjson_extension_and_settings_cache(tmp_path: Path) -> None:
    audio(tmp_path, "a.wav")
    audio(tmp_path, "b.wav")
    line = '{"path": "%s", "transcription_config": {"language": "fr"}}\n'
    manifest = write(tmp_path / "m.NDJSON", line % "a.wav" + line % "b.wav")
    a, b = specs(rows(manifest))
    assert a.settings is b.settings and a.settings.transcription_config.language == "fr"


def jsonl_case(tmp_path: Path, bad_line: str | bytes) -> Rejection:
    audio(tmp_path, "good1.wav")
    audio(tmp_path, "good2.wav")
    bad = bad_line.encode() if isinstance(bad_line, str) else bad_line
    manifest = write(tmp_path / "m.jsonl", b'{"path": "good1.wav"}\n' + bad + b'\n{"path": "good2.wav"}\n')
    result = rows(manifest)
    assert [s.relative_path for s in specs(result)] == ["good1.wav", "good2.wav"]
    rejection = only_rejection(result)
    assert rejection.line == 2
    assert_one_line(rejection)
    return rejection


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[1, 2]", "expected a JSON object, got an array"),
        ('"a.wav"', "expected a JSON object, got a string"),
        ("{oops", "invalid JSON (Expecting property name enclosed in double quotes at character 2)"),
        ('{"path": "good1.wav", "x": NaN}', "invalid JSON (NaN is not valid JSON)"),
        ("{}", "missing path"),
        ('{"path": ""}', "missing path"),
        ('{"path": 3}', "path: expected a string, got a number"),
        ('{"path": "x.wav\\u0000"}', "path contains a NUL byte: 'x.wav\\x00'"),
        ('{"path": "good1.wav", "language": "fr"}', "unknown key 'language' (allowed: path, job_id,"),
        ('{"path": "good1.wav", "job_id": 5}', "job_id: expected a string, got a number"),
        ('{"path": "good1.wav", "job_id": "a b"}', "invalid job_id 'a b': use 1-128 letters and digits"),
        ('{"path": "good1.wav", "tracking": {"titel": "x"}}', "tracking.titel: unknown key"),
        ('{"path": "good1.wav", "tracking": "x"}', "tracking: input should be a valid dictionary"),
        (
            '{"path": "good1.wav", "transcription_config": {"diarization": "loud"}}',
            "transcription_config.diarization: invalid value 'loud' "
            "(allowed: 'none', 'speaker' or 'channel')",
        ),
        ('{"path": "good1.wav", "model_code": "x"}', "model_code: unknown model code 'x'"),
        ('{"path": "good1.wav", "metadata": [1]}', "metadata: input should be a valid dictionary"),
        ('{"path": "missing.wav"}', "file not found"),
        ("[" * 100_000, "invalid JSON (nested too deeply)"),
    ],
)
def test_jsonl_bad_rows(tmp_path: Path, line: str, reason: str) -> None:
    bad = jsonl_case(tmp_path, line)
    assert bad.reason.startswith(reason), bad.reason


def test_jsonl_errors_after_the_first_are_counted(tmp_path: Path) -> None:
    line = '{"path": "good1.wav", "transcription_config": {"diarization": "loud", "operating_point": "x"}}'
    assert jsonl_case(tmp_path, line).reason.endswith("(and 1 more problem)")


def test_jsonl_invalid_utf8(tmp_path: Path) -> None:
    bad = jsonl_case(tmp_path, b'{"path": "\xff.wav"}')
    assert bad.reason == "invalid UTF-8 (byte 11 of the line)"


def test_jsonl_nul_byte(tmp_path: Path) -> None:
    assert jsonl_case(tmp_path, b'{"path": "a\x00.wav"}').reason == "NUL byte in line"


def test_jsonl_absurdly_long_line(tmp_path: Path) -> None:
    line = '{"path": "good1.wav", "metadata": {"x": "' + "y" * (2 * LINE_LIMIT_BYTES) + '"}}'
    assert jsonl_case(tmp_path, line).reason == f"line longer than {LINE_LIMIT_BYTES} bytes"


def test_jsonl_line_exactly_at_the_limit_is_read(tmp_path: Path) -> None:
    audio(tmp_path, "a.wav")
    prefix = '{"path": "a.wav", "metadata": {"x": "'
    line = prefix + "y" * (LINE_LIMIT_BYTES - len(prefix) - 4) + '"}}\n'
    assert len(line.encode()) == LINE_LIMIT_BYTES
    manifest = write(tmp_path / "m.jsonl", line)
    assert len(specs(rows(manifest))) == 1


def test_jsonl_relative_path_outside_manifest_folder(tmp_path: Path) -> None:
    other = audio(tmp_path, "other/a.wav")
    manifest = write(tmp_path / "lists" / "m.jsonl", '{"path": "../other/a.wav"}\n')
    (spec,) = specs(rows(manifest))
    assert spec.path == other and spec.relative_path == str(other).lstrip("/")


# --- directories --------------------------------------------------------------------------------------


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


# --- permissions (needs an unprivileged process: root reads everything) --------------------------------


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


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A world-traversable directory (tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="slng-sources-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for dirpath, dirnames, _ in os.walk(path):
            for name in dirnames:
                os.chmod(os.path.join(dirpath, name), 0o755)
        shutil.rmtree(path)


def test_unreadable_file_and_directory(shared_dir: Path) -> None:
    for rel in ("good1.wav", "secret.wav", "good2.wav", "locked/x.wav"):
        audio(shared_dir, rel).chmod(0o644)
    (shared_dir / "secret.wav").chmod(0o000)
    (shared_dir / "locked").chmod(0o000)
    manifest = write(shared_dir / "m.csv", "path\ngood1.wav\nsecret.wav\nlocked/x.wav\ngood2.wav\n")
    manifest.chmod(0o644)

    def job() -> list[str]:
        result = rows(manifest) + rows(shared_dir)
        return [r.message() if isinstance(r, Rejection) else f"OK {r.relative_path}" for r in result]

    assert run_unprivileged(job) == [
        "OK good1.wav",
        f"{manifest}:3: {shared_dir / 'secret.wav'}: permission denied (not readable)",
        f"{manifest}:4: {shared_dir / 'locked/x.wav'}: permission denied",
        "OK good2.wav",
        "OK good1.wav",
        "OK good2.wav",
        f"{shared_dir}: {shared_dir / 'locked'}: cannot read directory: permission denied",
        f"{shared_dir}: {shared_dir / 'secret.wav'}: permission denied (not readable)",
    ]


def test_unreadable_manifest_is_a_manifest_error(shared_dir: Path) -> None:
    manifest = write(shared_dir / "m.jsonl", "{}\n")
    manifest.chmod(0o000)

    def job() -> list[str]:
        messages = []
        for check in (lambda: check_sources([str(manifest)]), lambda: rows(manifest)):
            try:
                check()
            except ManifestError as exc:
                messages.append(str(exc))
        return messages

    expected = f"{manifest}: cannot open manifest: permission denied"
    assert run_unprivileged(job) == [expected, expected]


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
        f"-:6: {a}: unknown key 'bogus' (allowed: path, job_id, transcription_config, tracking, "
        "output_config, metadata, model_code)",
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
