"""JobSettings merge and hash, and the Rejection message format."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.api.models import (
    DEFAULT_MODEL_CODE,
    OutputConfig,
    SrtOverrides,
    Tracking,
    TranscriptionConfig,
    VocabItem,
)
from pipeline.sources.rows import FileSpec, JobSettings, Rejection, escape_control


def settings(**tc: object) -> JobSettings:
    return JobSettings.model_validate({"transcription_config": tc})


# --- validation ---------------------------------------------------------------------------------------


def test_defaults_and_frozen() -> None:
    s = settings(language="en")
    assert s.model_code == DEFAULT_MODEL_CODE
    assert s.tracking is None and s.output_config is None and s.metadata is None
    with pytest.raises(ValidationError):
        s.model_code = "x"  # type: ignore[misc]


def test_unknown_model_code_rejected_with_supported_list() -> None:
    with pytest.raises(ValidationError, match=r"unknown model code \"acme/whisper\".*supported: slng/"):
        JobSettings(transcription_config=TranscriptionConfig(), model_code="acme/whisper")


def test_extra_field_forbidden() -> None:
    with pytest.raises(ValidationError, match="extra"):
        JobSettings.model_validate({"transcription_config": {}, "langauge": "en"})


# --- hash ---------------------------------------------------------------------------------------------


def test_same_settings_same_hash_and_hex_sha256() -> None:
    a = settings(language="en", diarization="speaker")
    b = settings(diarization="speaker", language="en")
    assert a.settings_hash() == b.settings_hash()
    assert len(a.settings_hash()) == 64
    int(a.settings_hash(), 16)


def test_different_language_different_hash() -> None:
    assert settings(language="en").settings_hash() != settings(language="fr").settings_hash()


def test_each_section_changes_the_hash() -> None:
    base = settings(language="en")
    variants = [
        JobSettings(transcription_config=TranscriptionConfig(language="en"), tracking=Tracking(title="t")),
        JobSettings(
            transcription_config=TranscriptionConfig(language="en"),
            output_config=OutputConfig(srt_overrides=SrtOverrides(max_lines=2)),
        ),
        JobSettings(transcription_config=TranscriptionConfig(language="en"), metadata={"k": 1}),
    ]
    hashes = {base.settings_hash(), *(v.settings_hash() for v in variants)}
    assert len(hashes) == 4


def test_metadata_key_order_irrelevant() -> None:
    a = JobSettings(transcription_config=TranscriptionConfig(), metadata={"a": 1, "b": {"x": 1, "y": 2}})
    b = JobSettings(transcription_config=TranscriptionConfig(), metadata={"b": {"y": 2, "x": 1}, "a": 1})
    assert a.settings_hash() == b.settings_hash()


def test_explicit_none_and_empty_sections_hash_like_absent() -> None:
    plain = settings(language="en")
    noisy = JobSettings(
        transcription_config=TranscriptionConfig(language="en", domain=None),
        tracking=Tracking(),
        output_config=OutputConfig(srt_overrides=SrtOverrides()),
    )
    assert plain.settings_hash() == noisy.settings_hash()


def test_hash_is_stable_across_versions_of_this_code() -> None:
    # Pinned: changing the canonical form would make every ledger entry look like a new job.
    s = settings(language="en")
    canonical = json.dumps(
        {"model_code": DEFAULT_MODEL_CODE, "transcription_config": {"language": "en"}},
        sort_keys=True,
        separators=(",", ":"),
    )
    assert s.settings_hash() == hashlib.sha256(canonical.encode()).hexdigest()


def test_model_copy_update_does_not_keep_a_stale_hash() -> None:
    s = settings(language="en")
    before = s.settings_hash()
    changed = s.model_copy(update={"transcription_config": TranscriptionConfig(language="fr")})
    assert changed.settings_hash() != before
    assert changed.settings_hash() == settings(language="fr").settings_hash()


def test_equality_ignores_the_cached_hash() -> None:
    a, b = settings(language="en"), settings(language="en")
    a.settings_hash()
    assert a == b


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=6))
def test_hash_independent_of_metadata_insertion_order(meta: dict[str, object]) -> None:
    reordered = dict(reversed(list(meta.items())))
    a = JobSettings(transcription_config=TranscriptionConfig(), metadata=meta)
    b = JobSettings(transcription_config=TranscriptionConfig(), metadata=reordered)
    assert a.settings_hash() == b.settings_hash()


# --- merge --------------------------------------------------------------------------------------------


def full_defaults() -> JobSettings:
    return JobSettings(
        transcription_config=TranscriptionConfig(
            language="en", operating_point="standard", additional_vocab=[VocabItem(content="SLNG")]
        ),
        tracking=Tracking(title="default", tags=["x"]),
        output_config=OutputConfig(srt_overrides=SrtOverrides(max_line_length=40, max_lines=2)),
        metadata={"team": "a", "keep": True},
    )


def test_merge_field_by_field() -> None:
    row = JobSettings(
        transcription_config=TranscriptionConfig(language="fr", diarization="speaker"),
        tracking=Tracking(reference="r1"),
        output_config=OutputConfig(srt_overrides=SrtOverrides(max_lines=3)),
        metadata={"team": "b"},
    )
    merged = row.merged_over(full_defaults())
    tc = merged.transcription_config
    assert (tc.language, tc.operating_point, tc.diarization) == ("fr", "standard", "speaker")
    assert tc.additional_vocab == [VocabItem(content="SLNG")]
    assert merged.tracking == Tracking(title="default", tags=["x"], reference="r1")
    assert merged.output_config == OutputConfig(srt_overrides=SrtOverrides(max_line_length=40, max_lines=3))
    assert merged.metadata == {"team": "b", "keep": True}
    assert merged.model_code == DEFAULT_MODEL_CODE


def test_merge_lists_replace_not_append() -> None:
    row = JobSettings(transcription_config=TranscriptionConfig(), tracking=Tracking(tags=["y"]))
    assert row.merged_over(full_defaults()).tracking == Tracking(title="default", tags=["y"])


def test_merge_of_empty_row_equals_defaults() -> None:
    defaults = full_defaults()
    merged = settings().merged_over(defaults)
    assert merged == defaults
    assert merged.settings_hash() == defaults.settings_hash()


def test_merge_onto_empty_defaults_equals_row() -> None:
    row = full_defaults()
    merged = row.merged_over(settings())
    assert merged.settings_hash() == row.settings_hash()


def test_merge_model_code_only_when_set() -> None:
    defaults = settings()
    explicit = JobSettings(transcription_config=TranscriptionConfig(), model_code=DEFAULT_MODEL_CODE)
    assert "model_code" in explicit.model_fields_set
    assert settings().merged_over(defaults).model_code == DEFAULT_MODEL_CODE
    assert explicit.merged_over(defaults).model_code == DEFAULT_MODEL_CODE


def test_merge_result_hash_matches_equivalent_direct_settings() -> None:
    merged = settings(language="fr").merged_over(settings(language="en", diarization="speaker"))
    assert merged.settings_hash() == settings(diarization="speaker", language="fr").settings_hash()


# --- rows ---------------------------------------------------------------------------------------------


def test_rejection_message_formats() -> None:
    assert Rejection("manifest.csv", 12, "/abs/a.wav", "file not found").message() == (
        "manifest.csv:12: /abs/a.wav: file not found"
    )
    assert Rejection("dir", None, "/abs/a.wav", "empty file").message() == "dir: /abs/a.wav: empty file"
    assert Rejection("m.jsonl", 3, None, "missing path").message() == "m.jsonl:3: missing path"


def test_rejection_message_escapes_control_characters() -> None:
    msg = Rejection("m\n.csv", 1, "/a\r\nb\x00\x1b[31m.wav\u2028", "bad\tthing").message()
    assert msg == "m\\n.csv:1: /a\\r\\nb\\x00\\x1b[31m.wav\\u2028: bad\\tthing"
    assert msg.isprintable()


def test_escape_control_leaves_ordinary_text() -> None:
    assert escape_control("café/naïve ünïcode.wav") == "café/naïve ünïcode.wav"


def test_filespec_is_frozen() -> None:
    spec = FileSpec("-", 1, Path("/a.wav"), 1, 1, None, settings(), "a.wav")
    with pytest.raises(AttributeError):
        spec.size = 2  # type: ignore[misc]
