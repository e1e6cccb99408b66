"""Regenerate the demo audio and manifests (stdlib only): `python sample_manifests/make_samples.py`.

The files are tiny tones, so the demo and the tests run offline without any real recordings.
"""

from __future__ import annotations

import json
import math
import struct
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
RATE = 8000  # 8 kHz mono 16-bit: a few KB per file

# (relative path, tone in Hz, seconds)
TONES = [
    ("audio/greeting.wav", 440.0, 0.30),
    ("audio/standup.wav", 523.25, 0.40),
    ("audio/interview.wav", 659.25, 0.50),
    ("audio/calls/call-001.wav", 349.23, 0.20),
    ("audio/calls/call-002.wav", 392.0, 0.25),
]


def write_tone(path: Path, freq: float, seconds: float) -> None:
    """A sine tone with short fades so it does not click."""
    frames = int(RATE * seconds)
    fade = int(RATE * 0.02)
    samples = []
    for i in range(frames):
        envelope = min(1.0, i / fade, (frames - 1 - i) / fade)
        samples.append(int(12000 * envelope * math.sin(2 * math.pi * freq * i / RATE)))
    write_wav(path, samples, RATE)


def write_wav(path: Path, samples: list[int], rate: int) -> Path:
    """16-bit mono PCM samples as a WAV file (the tests write their audio with this too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


CSV = """\
path,job_id,language,operating_point,diarization,enable_entities,title,tags,srt_max_line_length,srt_max_lines
audio/greeting.wav,,en,standard,none,,Greeting,"demo,short",,
audio/standup.wav,standup20260101,en,enhanced,speaker,true,Daily stand-up,"demo,meeting",42,2
audio/interview.wav,,fr,,speaker,no,Interview,"[""demo"", ""interview""]",,3
audio/calls/call-001.wav,,es,standard,channel,,Call 1,calls,,
audio/calls/call-002.wav,call002,,,,,,,,
"""

JSONL_ROWS = [
    {"path": "audio/greeting.wav", "transcription_config": {"language": "en"}},
    {
        "path": "audio/standup.wav",
        "job_id": "standupjsonl1",
        "transcription_config": {
            "language": "en",
            "operating_point": "enhanced",
            "diarization": "speaker",
            "additional_vocab": [{"content": "SLNG", "sounds_like": ["sling"]}],
        },
        "tracking": {"title": "Daily stand-up", "tags": ["demo", "meeting"], "reference": "ref-123"},
        "output_config": {"srt_overrides": {"max_line_length": 42, "max_lines": 2}},
        "metadata": {"team": "platform"},
    },
    {"path": "audio/interview.wav", "transcription_config": {"language": "fr", "diarization": "speaker"}},
    {"path": "audio/calls/call-001.wav", "tracking": {"details": "first call"}},
    {"path": "audio/calls/call-002.wav"},
]


def main() -> None:
    for rel, freq, seconds in TONES:
        write_tone(HERE / rel, freq, seconds)
    (HERE / "demo.csv").write_text(CSV, encoding="utf-8")
    lines = "".join(json.dumps(row) + "\n" for row in JSONL_ROWS)
    (HERE / "demo.jsonl").write_text(lines, encoding="utf-8")


if __name__ == "__main__":
    main()
