"""Small, real audio files for tests (stdlib `wave`), each distinct so MD5s differ."""

from __future__ import annotations

import math
from pathlib import Path

from sample_manifests.make_samples import write_wav as write_pcm


def write_wav(path: Path, seconds: float = 0.05, freq: float = 440.0, rate: int = 8000) -> Path:
    frames = max(1, int(rate * seconds))
    samples = [int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(frames)]
    return write_pcm(path, samples, rate)


def make_tree(root: Path, count: int, seconds: float = 0.02) -> list[Path]:
    """`count` distinct WAV files spread over a few sub-folders."""
    return [write_wav(root / f"d{i % 5}" / f"f{i:05d}.wav", seconds, 200.0 + i) for i in range(count)]


def garbage_wav(path: Path) -> Path:
    """A .wav name over bytes that are no audio: the sandbox's job for it ends FAILED."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not audio, just text pretending\n" * 50)
    return path


def tree_with_a_broken_file(root: Path, good: int) -> Path:
    """`good` distinct WAV files and one undecodable `broken.wav` under `root`; the broken one's path."""
    make_tree(root, good)
    return garbage_wav(root / "broken.wav")
