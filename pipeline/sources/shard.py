"""`--shard I/N`: split one manifest across N independent runs, without any shared server.

Each row belongs to exactly one shard, decided by a stable hash of the file's normalised absolute
path (blake2b, not Python's salted `hash`), so every run computes the same split on every host and
across restarts, and a file keeps its shard when its size, mtime or settings change. A rejected row
without a path is placed by its source and line, so it too is reported by one shard only. All runs
must see the same paths (the same manifest on the same mount points).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipeline.sources.remote import is_url
from pipeline.sources.rows import FileSpec, Row

_SHARD_PATTERN = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
USAGE = "--shard takes I/N with 1 <= I <= N (e.g. 2/4)"


def shard_key(row: Row) -> str:
    """What a row is placed by: its normalised absolute path, else (no path) its source and line."""
    path = row.path_text if isinstance(row, FileSpec) else row.path
    if path is not None and is_url(path):
        return path
    if path is not None:
        return os.path.normpath(os.path.abspath(path))
    return f"{row.source}\0{row.line}"


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"{USAGE}, not {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`"2/4"` -> Shard(2, 4); anything else is a ValueError naming the expected form."""
        match = _SHARD_PATTERN.fullmatch(text)
        if match is None:
            raise ValueError(f"{USAGE}, not {text[:40]!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def number_of(self, key: str) -> int:
        """The 1-based shard that `key` belongs to."""
        digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count + 1

    def owns(self, row: Row) -> bool:
        return self.number_of(shard_key(row)) == self.index

    def select(self, rows: Iterable[Row]) -> Iterator[Row]:
        """The rows of this shard, streamed."""
        return (row for row in rows if self.owns(row))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
