"""Manifest lines read in bounded memory: one physical line at a time, decoded one by one.

Invalid UTF-8, NUL bytes or a line over 1 MiB damage that line only: the problem travels beside
the text, so the reader rejects one row and goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Final, Protocol

LINE_LIMIT_BYTES: Final = 1 << 20  # a longer manifest line is rejected, not buffered
BOM: Final = b"\xef\xbb\xbf"


def has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


Line = tuple[int, str, str | None]  # (line number, text, problem or None)


class ByteLines(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def binary_lines(stream: ByteLines, start: int = 0) -> Iterator[Line]:
    """Physical lines, capped at LINE_LIMIT_BYTES and decoded one by one, numbered after `start`.

    A damaged line still yields text (replacement characters, NUL removed, or just a newline if
    it was too long) so a CSV parser keeps its structure; the problem travels beside it.
    """
    lineno = start
    readline = stream.readline
    while True:
        raw = readline(LINE_LIMIT_BYTES + 1)
        if not raw:
            return
        lineno += 1
        if lineno == 1 and raw.startswith(BOM):
            raw = raw[3:]
        if len(raw) > LINE_LIMIT_BYTES:
            while not raw.endswith(b"\n"):  # drain the rest of the line in bounded chunks
                raw = readline(1 << 16)
                if not raw:
                    break
            yield lineno, "\n", f"line longer than {LINE_LIMIT_BYTES} bytes"
            continue
        problem = None
        if b"\0" in raw:
            problem = "NUL byte in line"
            raw = raw.replace(b"\0", b"")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = problem or f"invalid UTF-8 (byte {exc.start + 1} of the line)"
            text = raw.decode("utf-8", "replace")
        yield lineno, text, problem


def text_lines(stream: IO[str]) -> Iterator[Line]:
    """Same contract as binary_lines for an already-decoded stream (limit counted in characters)."""
    lineno = 0
    readline = stream.readline
    while True:
        text = readline(LINE_LIMIT_BYTES + 1)
        if not text:
            return
        lineno += 1
        if lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if len(text) > LINE_LIMIT_BYTES:
            while not text.endswith("\n"):
                text = readline(1 << 16)
                if not text:
                    break
            yield lineno, "\n", f"line longer than {LINE_LIMIT_BYTES} characters"
            continue
        problem = None
        if "\0" in text:
            problem = "NUL byte in line"
            text = text.replace("\0", "")
        if has_surrogates(text):  # undecodable bytes smuggled in by surrogateescape
            problem = problem or "invalid UTF-8"
            text = text.encode("utf-8", "replace").decode("utf-8")
        yield lineno, text, problem


class ByteChunks(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def null_records(stream: ByteChunks, chunk: int = 1 << 16) -> Iterator[Line]:
    """NUL-separated records (`find -print0`), numbered from 1, each at most LINE_LIMIT_BYTES and
    decoded one by one, a problem travelling beside its record as with lines. The bytes are kept
    exactly (a path may hold spaces or newlines). Memory: one record and one chunk at most. Reads
    what has come (`read1`) rather than waiting for a whole chunk: stdin may trickle."""
    read = getattr(stream, "read1", stream.read)
    number, pending, overflow = 0, bytearray(), False
    while data := read(chunk):
        *complete, rest = data.split(b"\0")
        for part in complete:
            record = bytes(pending) + part
            pending.clear()
            overflow = overflow or len(record) > LINE_LIMIT_BYTES
            if record or overflow:
                number += 1
                yield _record(number, record, overflow)
            overflow = False
        pending += rest
        if len(pending) > LINE_LIMIT_BYTES:
            pending.clear()
            overflow = True
    if pending or overflow:
        yield _record(number + 1, bytes(pending), overflow)


def _record(number: int, record: bytes, overflow: bool) -> Line:
    if overflow:
        return number, "", f"path longer than {LINE_LIMIT_BYTES} bytes"
    try:
        return number, record.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return number, record.decode("utf-8", "replace"), f"invalid UTF-8 (byte {exc.start + 1} of the path)"
