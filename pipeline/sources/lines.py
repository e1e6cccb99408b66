"""Manifest lines read in bounded memory: one physical line at a time, decoded one by one.

Invalid UTF-8, NUL bytes or a line over 1 MiB damage that line only: the problem travels beside
the text, so the reader rejects one row and goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, AnyStr, Final, Generic, Protocol

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
    yield from _capped_lines(stream.readline, start, _BYTES)


def text_lines(stream: IO[str]) -> Iterator[Line]:
    """Same contract as binary_lines for an already-decoded stream (limit counted in characters)."""
    yield from _capped_lines(stream.readline, 0, _TEXT)


def _utf8(raw: bytes, what: str = "line") -> tuple[str, str | None]:
    """`raw` as text, and where it is not UTF-8 (then with replacement characters)."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8", "replace"), f"invalid UTF-8 (byte {exc.start + 1} of the {what})"


def _unsmuggled(text: str) -> tuple[str, str | None]:
    """`text` with the undecodable bytes that surrogateescape smuggles in replaced, and whether it had any."""
    if has_surrogates(text):
        return text.encode("utf-8", "replace").decode("utf-8"), "invalid UTF-8"
    return text, None


@dataclass(frozen=True, slots=True)
class _Form(Generic[AnyStr]):
    """How lines of bytes or of text are spelt: their BOM, NUL and newline, what the limit counts,
    and how a line becomes text (with its problem, if any)."""

    bom: AnyStr
    nul: AnyStr
    newline: AnyStr
    unit: str
    decode: Callable[[AnyStr], tuple[str, str | None]]


_BYTES = _Form(BOM, b"\0", b"\n", "bytes", _utf8)
_TEXT = _Form("\ufeff", "\0", "\n", "characters", _unsmuggled)


def _capped_lines(readline: Callable[[int], AnyStr], start: int, form: _Form[AnyStr]) -> Iterator[Line]:
    """The reading both kinds of lines share: capped, the first one's BOM dropped, NUL removed."""
    lineno = start
    nul, no_nul, newline, decode = form.nul, form.nul[:0], form.newline, form.decode
    while True:
        raw = readline(LINE_LIMIT_BYTES + 1)
        if not raw:
            return
        lineno += 1
        if lineno == 1:
            raw = raw.removeprefix(form.bom)
        if len(raw) > LINE_LIMIT_BYTES:
            while not raw.endswith(newline):  # drain the rest of the line in bounded chunks
                raw = readline(1 << 16)
                if not raw:
                    break
            yield lineno, "\n", f"line longer than {LINE_LIMIT_BYTES} {form.unit}"
            continue
        problem = None
        if nul in raw:
            problem = "NUL byte in line"
            raw = raw.replace(nul, no_nul)
        text, undecodable = decode(raw)
        yield lineno, text, problem or undecodable


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
    return (number, *_utf8(record, "path"))
