"""CSV manifests: columns, settings cells, and each bad row with its own reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.api.models import DEFAULT_MODEL_CODE
from pipeline.sources.readers import (
    CSV_COLUMNS,
    LINE_LIMIT_BYTES,
    check_sources,
)
from pipeline.sources.rows import FileSpec, JobSettings, Rejection
from tests.sources.helpers import DEFAULTS, audio, csv_case, only_rejection, rejections, rows, specs, write

# --- CSV ------------------------------------------------------------------------------------------------


def test_csv_every_column(tmp_path: Path) -> None:
    a = audio(tmp_path, "audio/a.wav", 10)
    audio(tmp_path, "audio/sub/b.MP3", 20)
    header = ",".join(CSV_COLUMNS)
    vocab = '"[{""content"": ""SLNG"", ""sounds_like"": [""sling""]}]"'
    manifest = write(
        tmp_path / "m.csv",
        f"\ufeff{header}\n"
        f'audio/a.wav,job1,fr,enhanced,speaker,medical,fr-FR,yes,{vocab},Title,ref-1,"a, b ,",details,'
        f'"{{""k"": 1}}","{{""summarization"": true}}",{DEFAULT_MODEL_CODE},42,2,\n'
        "audio/sub/b.MP3,,,,,,,,,,,,,,,,,,\n",
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
        "extra": {"summarization": True},
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
    assert bad.reason.startswith('unsupported extension ".txt" (supported: aac, amr, flac, m4a, mp3')


def test_csv_no_extension(tmp_path: Path) -> None:
    audio(tmp_path, "README")
    assert csv_case(tmp_path, "path", "README").reason.startswith("no file extension (supported: ")


def test_csv_bad_enum_names_field_and_allowed_values(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,diarization", "good1.wav,loud")
    assert bad.path == str(tmp_path / "good1.wav")
    assert bad.reason == 'diarization: invalid value "loud" (allowed: "none", "speaker" or "channel")'


def test_csv_bad_operating_point(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,operating_point", "good1.wav,turbo")
    assert bad.reason == 'operating_point: invalid value "turbo" (allowed: "standard" or "enhanced")'


@pytest.mark.parametrize(
    ("column", "cell", "reason"),
    [
        (
            "metadata",
            '"{oops"',
            "metadata: malformed JSON (Expecting property name enclosed in double quotes",
        ),
        ("metadata", "[1]", "metadata: expected a JSON object"),
        ("extra", "[1]", "extra: expected a JSON object"),
        ("extra", '"{""language"": ""fr""}"', "extra: language is a named setting"),
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
    assert bad.reason == 'enable_entities: expected true/false/1/0/yes/no, got "maybe"'


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("0", 'srt_max_lines: input should be greater than or equal to 1 (got "0")'),
        ("two", "srt_max_lines: input should be a valid integer, unable to parse string as an integer"),
    ],
)
def test_csv_bad_integer(tmp_path: Path, cell: str, reason: str) -> None:
    bad = csv_case(tmp_path, "path,srt_max_lines", f"good1.wav,{cell}")
    assert bad.reason.startswith(reason), bad.reason


def test_csv_invalid_job_id(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,job_id", "good1.wav,bad-id_1")
    assert bad.reason == 'invalid job_id "bad-id_1": use 1-128 letters and digits'


def test_csv_too_long_job_id(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,job_id", f"good1.wav,{'a' * 129}")
    assert bad.reason.startswith('invalid job_id "aaaa') and "...:" in bad.reason


def test_csv_unknown_model_code(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,model_code", "good1.wav,acme/whisper:1")
    assert bad.reason == (
        f'model_code: unknown model code "acme/whisper:1" (supported: {DEFAULT_MODEL_CODE})'
    )


def test_csv_language_too_long_is_truncated_in_reason(tmp_path: Path) -> None:
    bad = csv_case(tmp_path, "path,language", f"good1.wav,{'x' * 500}")
    assert bad.reason.startswith('language: string should have at most 32 characters (got "xxx')
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
