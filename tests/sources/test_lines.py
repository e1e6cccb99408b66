"""binary_lines and text_lines keep one contract: capped lines, the first line's BOM dropped, a
damaged line's problem travelling beside its text, numbering unbroken."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest

from pipeline.sources.lines import LINE_LIMIT_BYTES, Line, binary_lines, text_lines

MANIFEST = b"\xef\xbb\xbfa.wav\nb\x00.wav\nbad\xff.wav\n" + b"x" * (LINE_LIMIT_BYTES + 10) + b"\nc.wav\n"


def from_bytes(data: bytes) -> Iterator[Line]:
    return binary_lines(io.BytesIO(data))


def from_text(data: bytes) -> Iterator[Line]:
    return text_lines(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape"))


@pytest.mark.parametrize(
    ("read", "replaced", "undecodable", "unit"),
    [
        (from_bytes, "bad\ufffd.wav\n", "invalid UTF-8 (byte 4 of the line)", "bytes"),
        (from_text, "bad?.wav\n", "invalid UTF-8", "characters"),  # a smuggled byte re-encoded
    ],
    ids=["bytes", "text"],
)
def test_both_kinds_of_lines_keep_one_contract(
    read: Callable[[bytes], Iterator[Line]], replaced: str, undecodable: str, unit: str
) -> None:
    assert list(read(MANIFEST)) == [
        (1, "a.wav\n", None),
        (2, "b.wav\n", "NUL byte in line"),
        (3, replaced, undecodable),
        (4, "\n", f"line longer than {LINE_LIMIT_BYTES} {unit}"),
        (5, "c.wav\n", None),
    ]


def test_binary_lines_number_after_start_and_keep_a_later_bom() -> None:
    assert list(binary_lines(io.BytesIO(b"\xef\xbb\xbfa\n"), start=9)) == [(10, "\ufeffa\n", None)]
