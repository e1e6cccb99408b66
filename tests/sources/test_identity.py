"""A file's identity: its bytes as listed plus the settings that change the recognition."""

from __future__ import annotations

from pathlib import Path

from pipeline.api.models import OutputConfig, SrtOverrides, Tracking, TranscriptionConfig
from pipeline.sources.identity import file_key, stored_file_key
from pipeline.sources.rows import FileSpec, JobSettings


def spec(path: Path, settings: JobSettings) -> FileSpec:
    return FileSpec("m.csv", 2, path, 10, 5, None, settings, "a.wav")


BASE = JobSettings(transcription_config=TranscriptionConfig(language="en"))


def test_labels_and_output_shaping_leave_the_identity_alone(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    labelled = BASE.model_copy(
        update={
            "tracking": Tracking(tags=["batch7"], title="t"),
            "metadata": {"customer": "x"},
            "output_config": OutputConfig(srt_overrides=SrtOverrides(max_line_length=30)),
        }
    )
    assert file_key(spec(path, labelled)) == file_key(spec(path, BASE))
    assert labelled.settings_hash() != BASE.settings_hash()  # the change is still seen


def test_recognition_settings_are_part_of_the_identity(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    french = JobSettings(transcription_config=TranscriptionConfig(language="fr"))
    extra = BASE.model_copy(update={"extra": {"new_knob": 1}})
    keys = {file_key(spec(path, s)) for s in (BASE, french, extra)}
    assert len(keys) == 3


def test_a_stored_row_gives_back_its_rows_key(tmp_path: Path) -> None:
    row = spec(tmp_path / "a.wav", BASE.model_copy(update={"metadata": {"m": [1, 2]}}))
    stored = stored_file_key(row.path_text, 10, 5, None, row.settings.model_dump_json(exclude_none=True))
    assert stored == file_key(row)
