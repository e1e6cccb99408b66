"""The cloud `url` cells of a CSV or JSONL manifest, read in one quick pass before the run starts.

Only what the up-front credential check needs: the first URL of each bucket a manifest names, so
that a missing or refused credential stops the run before any job is created, even when many local
rows come first. The rows themselves are read and checked later by the manifest's reader; a line
this pass cannot make sense of is skipped here and reported there.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import stat
from collections.abc import Iterator
from typing import Any

from pipeline.sources.lines import binary_lines
from pipeline.sources.remote import is_cloud_url


def cloud_url_cells(source: str) -> Iterator[str]:
    """Each cloud `url` cell of the manifest `source`, in order; nothing for any other source
    (a folder, stdin, a FIFO: read once, so never read ahead)."""
    with contextlib.suppress(OSError):
        if not stat.S_ISREG(os.stat(source).st_mode):
            return
        low = source.lower()
        if low.endswith(".csv"):
            yield from _csv_cells(source)
        elif low.endswith((".jsonl", ".ndjson")):
            yield from _jsonl_cells(source)


def _csv_cells(source: str) -> Iterator[str]:
    with open(source, encoding="utf-8-sig", errors="replace", newline="") as handle:
        records = csv.reader(handle)
        try:
            header = next((r for r in records if r), None)
            if header is None:
                return
            names = [cell.strip().lower() for cell in header]
            if "url" not in names:
                return
            column = names.index("url")
            for record in records:
                if len(record) > column and is_cloud_url(cell := record[column].strip()):
                    yield cell
        except csv.Error:
            return  # the reader reports it; the rows after it are checked as they are read


def _jsonl_cells(source: str) -> Iterator[str]:
    with open(source, "rb") as handle:
        for _lineno, line, problem in binary_lines(handle):  # lines capped: memory stays bounded
            if problem is not None or '"url"' not in line:
                continue
            with contextlib.suppress(ValueError):
                data: Any = json.loads(line)
                cell = data.get("url") if isinstance(data, dict) else None
                if isinstance(cell, str) and is_cloud_url(cell.strip()):
                    yield cell.strip()
