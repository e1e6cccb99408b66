"""Pure pieces: fault-plan loading, audio sniffing and durations, transcript shapes, timestamps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.sandbox import FaultPlan
from pipeline.sandbox.audio_sniff import analyse, sniff_format
from pipeline.sandbox.timeutil import iso_z, parse_iso
from pipeline.sandbox.transcripts import make_words, to_srt, to_txt
from tests.sandbox.helpers import wav_bytes

TOML = """
seed = 7
s3_bandwidth_bytes_per_second = 2_000_000

[operations.create]
errors = [{status = 503, probability = 0.1}, {status = 429, nth = [2], retry_after = 1}]
lost_response = {nth = [3]}
latency = {distribution = "uniform", low_ms = 5, high_ms = 40}
rate_limit = {per_second = 10}

[operations.put]
reset = {after_bytes = 65536, nth = [1]}

[short_expiry]
expires_in = 2
fraction = 0.5
"""


def test_fault_plan_from_toml_and_json(tmp_path: Path) -> None:
    toml_path = tmp_path / "plan.toml"
    toml_path.write_text(TOML)
    plan = FaultPlan.from_file(toml_path)
    assert plan.seed == 7 and plan.operations["create"].errors[1].nth == [2]
    assert plan.operations["put"].reset is not None and plan.operations["put"].reset.after_bytes == 65536
    json_path = tmp_path / "plan.json"
    json_path.write_text(json.dumps(plan.model_dump()))
    assert FaultPlan.from_file(json_path) == plan


@pytest.mark.parametrize(
    "data",
    [
        {"operations": {"upload": {}}},
        {"operations": {"create": {"errors": [{"status": 418}]}}},
        {"operations": {"create": {"errors": [{"status": 500, "nth": [0]}]}}},
        {"operations": {"create": {"errors": [{"status": 500, "probability": 2}]}}},
        {"surprise": 1},
    ],
)
def test_fault_plan_rejects_nonsense(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FaultPlan.model_validate(data)


def test_wav_duration_and_sniffing(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(wav_bytes(2.5))
    info = analyse(path.read_bytes()[:64], path)
    assert info.decodable and info.format == "wav" and info.duration_seconds == 2.5
    assert info.mime_type == "audio/wav"
    assert analyse(wav_bytes(1.0), None).duration_seconds == 1.0  # from bytes alone (external mode)
    assert sniff_format(b"hello world") is None and not analyse(b"hello", None).decodable
    assert sniff_format(b"") is None


@settings(max_examples=60, deadline=None)
@given(
    job_id=st.from_regex(r"[a-zA-Z0-9]{1,12}", fullmatch=True),
    duration=st.floats(min_value=0.5, max_value=120),
    width=st.integers(min_value=1, max_value=90),
    lines=st.integers(min_value=1, max_value=4),
)
def test_srt_always_within_overrides(job_id: str, duration: float, width: int, lines: int) -> None:
    words = make_words(job_id, duration)
    assert words and words[-1].end <= duration + 1e-6
    srt = to_srt(words, width, lines)
    for block in srt.strip().split("\n\n"):
        parts = block.split("\n")
        assert 1 <= len(parts) - 2 <= lines
        assert all(len(line) <= width for line in parts[2:])
    joined = " ".join(" ".join(b.split("\n")[2:]) for b in srt.strip().split("\n\n"))
    if width >= 16:  # every word fits on a line: the words survive intact and in order
        assert joined.replace(".", "").split() == to_txt(words).replace(".", "").split()


def test_timestamps_round_trip() -> None:
    stamp = iso_z(1_776_000_000.1234)
    assert stamp.endswith("Z") and stamp == "2026-04-12T13:20:00.123Z"
    assert parse_iso(stamp) == pytest.approx(1_776_000_000.123)
    assert parse_iso("2026-04-12T13:20:00") == parse_iso("2026-04-12T13:20:00+00:00")
    assert parse_iso("2026-04-12T15:20:00 02:00") == parse_iso("2026-04-12T13:20:00Z")
