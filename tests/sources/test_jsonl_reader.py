"""JSONL manifests: keys, settings, and each bad line with its own reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.api.models import DEFAULT_MODEL_CODE
from pipeline.sources.readers import (
    JSONL_KEYS,
    LINE_LIMIT_BYTES,
)
from pipeline.sources.rows import FileSpec, Rejection
from tests.sources.helpers import DEFAULTS, assert_one_line, audio, only_rejection, rows, specs, write

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
        "extra": {"language_identification": {"expected_languages": ["de", "en"]}},
    }
    assert set(full) | {"url"} == set(JSONL_KEYS)  # url names the audio instead of path
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
        ('{"path": "x.wav\\u0000"}', 'path contains a NUL byte: "x.wav\\x00"'),
        ('{"path": "good1.wav", "language": "fr"}', 'unknown key "language" (allowed: path, job_id,'),
        ('{"path": "good1.wav", "job_id": 5}', "job_id: expected a string, got a number"),
        ('{"path": "good1.wav", "job_id": "a b"}', 'invalid job_id "a b": use 1-128 letters and digits'),
        ('{"path": "good1.wav", "tracking": {"titel": "x"}}', "tracking.titel: unknown key"),
        ('{"path": "good1.wav", "tracking": "x"}', "tracking: input should be a valid dictionary"),
        (
            '{"path": "good1.wav", "transcription_config": {"diarization": "loud"}}',
            'transcription_config.diarization: invalid value "loud" '
            '(allowed: "none", "speaker" or "channel")',
        ),
        ('{"path": "good1.wav", "model_code": "x"}', 'model_code: unknown model code "x"'),
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
