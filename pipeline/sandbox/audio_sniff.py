"""Just enough audio understanding to fail undecodable uploads and report input metadata.

The real service decodes the audio; the sandbox only sniffs magic bytes (a file that matches no
known container is "undecodable" and its job ends FAILED) and asks mutagen for the duration.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import mutagen
from pydantic import BaseModel

SNIFF_BYTES = 64 * 1024

MIME_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "amr": "audio/amr",
    "aac": "audio/aac",
}


class AudioInfo(BaseModel):
    decodable: bool
    format: str | None = None
    mime_type: str | None = None
    duration_seconds: float | None = None


def sniff_format(head: bytes) -> str | None:
    """Container format from the first bytes, or None when it looks like no audio at all."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp":
        return "m4a" if head[8:11] == b"M4A" else "mp4"
    if head[:5] == b"#!AMR":
        return "amr"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # 0xFFF sync, layer bits 00: ADTS AAC
            return "aac"
        if head[1] & 0xE0 == 0xE0:  # 0xFFE sync: MPEG audio frame
            return "mp3"
    return None


def _duration(source: Path | bytes) -> float | None:
    try:
        fileobj: Any = str(source) if isinstance(source, Path) else io.BytesIO(source)
        parsed = mutagen.File(fileobj)
    except Exception:  # mutagen raises many types for odd files; no duration is an answer
        return None
    length = getattr(getattr(parsed, "info", None), "length", None)
    return round(float(length), 3) if length else None


def analyse(head: bytes, full: Path | None) -> AudioInfo:
    """Decide decodability from `head`; take the duration from the whole file when it is local."""
    fmt = sniff_format(head)
    if fmt is None:
        return AudioInfo(decodable=False)
    duration = _duration(full if full is not None else head)
    return AudioInfo(decodable=True, format=fmt, mime_type=MIME_TYPES.get(fmt), duration_seconds=duration)


def analyse_file(path: Path) -> AudioInfo:
    """`analyse` of a whole local file (blocking: call it on a worker thread)."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    return analyse(head, path)
