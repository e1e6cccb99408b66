"""Test data, written under the suite's temp folder: real WAV files, big files, manifests."""

from __future__ import annotations

import os
import struct
from pathlib import Path

SAMPLE_RATE = 8000


def wav_header(data_bytes: int) -> bytes:
    """A 44-byte PCM WAV header (mono, 16-bit, 8 kHz) for `data_bytes` of samples."""
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def small_wavs(root: Path, count: int, size: int, *, per_dir: int = 500) -> list[Path]:
    """`count` distinct WAV files of exactly `size` bytes, `per_dir` to a sub-folder."""
    body = size - 44
    noise = os.urandom(body + 16)
    paths: list[Path] = []
    for i in range(count):
        folder = root / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"f{i:07d}.wav"
        offset = i % 16
        data = wav_header(body) + struct.pack("<I", i) + noise[offset + 4 : offset + body]
        with open(path, "wb") as fh:
            fh.write(data)
        paths.append(path)
    return paths


def big_wav(path: Path, size: int) -> Path:
    """One WAV of `size` bytes (incompressible content), written in 8 MiB blocks."""
    block = os.urandom(8 * 1024 * 1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(wav_header(size - 44))
        left = size - 44
        while left > 0:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n
    return path


def manifest(path: Path, rows: int, targets: list[Path], *, bad_first_row: bool) -> Path:
    """A CSV manifest of `rows` data rows cycling over `targets`; optionally a missing file first."""
    names = [str(t) for t in targets]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("path,language\n")
        start = 0
        if bad_first_row:
            fh.write(f"{path.parent / 'missing-first-row.wav'},en\n")
            start = 1
        lines = [f"{names[i % len(names)]},en\n" for i in range(start, rows)]
        fh.writelines(lines)
    return path
