"""Turn manifests, directories and stdin into validated rows, lazily and in bounded memory.

This module only picks the reader for each source; each reader has a module of its own
(csv_reader, jsonl_reader, stdin_reader, walk), the line reading is in lines, and the local row
checks every reader shares are in checks and row_settings.

Every row is checked locally (file exists, is a readable non-empty regular audio file under the
size limit; settings and job_id valid) before the runner makes any remote call, and a bad row is
a `Rejection` that never stops the iteration. Only a whole-source problem found before the first
row (missing source, bad CSV header) raises `ManifestError`.

Source kinds: `*.csv` (header row, one file per record), `*.jsonl` / `*.ndjson` (one object per
line, API-shaped settings), a directory (recursive walk), `-` (stdin: a path or a JSON object per
line) and, as a convenience, a single audio file.
"""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from typing import Final

from pipeline.api.models import AUDIO_EXTENSIONS
from pipeline.sources.checks import (
    ManifestError,
    SourceOptions,
    check_file,
    manifest_error,
    open_manifest,
    os_reason,
    reject,
)
from pipeline.sources.csv_reader import CSV_COLUMNS, CsvStream, csv_rows, read_csv_header
from pipeline.sources.jsonl_reader import JSONL_KEYS, jsonl_rows
from pipeline.sources.lines import LINE_LIMIT_BYTES, binary_lines
from pipeline.sources.rows import FileSpec, JobSettings, Row
from pipeline.sources.stdin_reader import stdin_rows
from pipeline.sources.walk import walk_rows

__all__ = [
    "CSV_COLUMNS",
    "JSONL_KEYS",
    "LINE_LIMIT_BYTES",
    "ManifestError",
    "SourceOptions",
    "check_sources",
    "iter_rows",
]


def _classify(source: str) -> tuple[str, os.stat_result | None]:
    """Which reader a source needs, or ManifestError if it is unusable as a whole."""
    if source == "-":
        return "stdin", None
    try:
        st = os.stat(source)
    except FileNotFoundError:
        raise manifest_error(source, "no such file or directory") from None
    except OSError as exc:
        raise manifest_error(source, os_reason(exc)) from None
    except ValueError:
        raise manifest_error(source, "path contains a NUL byte") from None
    if stat.S_ISDIR(st.st_mode):
        return "dir", st
    low = source.lower()
    if low.endswith(".csv"):
        return "csv", st
    if low.endswith((".jsonl", ".ndjson")):
        return "jsonl", st
    if os.path.splitext(low)[1][1:] in AUDIO_EXTENSIONS:
        return "file", st
    raise manifest_error(source, "not a manifest (.csv, .jsonl, .ndjson), a directory or an audio file")


def _single_file(source: str, defaults: JobSettings, options: SourceOptions) -> Iterator[Row]:
    path = os.path.abspath(source)
    checked = check_file(path, options.max_file_bytes)
    if isinstance(checked, str):
        yield reject(source, None, path, checked)
        return
    yield FileSpec(
        source, None, path, checked.st_size, checked.st_mtime_ns, None, defaults, os.path.basename(path)
    )


_READERS: Final[dict[str, Callable[[str, JobSettings, SourceOptions], Iterator[Row]]]] = {
    "csv": csv_rows,
    "jsonl": jsonl_rows,
    "dir": walk_rows,
    "file": _single_file,
}


# --- public API ------------------------------------------------------------------------------------------


def check_sources(sources: Sequence[str], options: SourceOptions | None = None) -> None:
    """Cheap up-front check of every source (exists, readable, CSV header valid), before any upload.

    Reads only CSV headers, and never from a FIFO or stdin, which could be read just once.
    """
    del options  # same checks whatever the options; kept for symmetry with iter_rows
    for source in sources:
        source = os.fspath(source)
        kind, st = _classify(source)
        if kind == "dir":
            if not os.access(source, os.R_OK | os.X_OK):
                raise manifest_error(source, "cannot read directory: permission denied")
        elif kind in ("csv", "jsonl") and st is not None and stat.S_ISREG(st.st_mode):
            with open_manifest(source) as handle:
                if kind == "csv":
                    stream = CsvStream(binary_lines(handle))
                    read_csv_header(source, stream, csv.reader(stream))


def iter_rows(
    sources: Sequence[str], defaults: JobSettings, options: SourceOptions | None = None
) -> Iterator[Row]:
    """Lazily yield one FileSpec or Rejection per input row, source after source.

    Rows without settings of their own reuse `defaults` (the same object); rows with settings get
    them merged over `defaults`. Raises ManifestError when a source turns out unusable as a whole.
    """
    opts = options if options is not None else SourceOptions()
    for source in sources:
        source = os.fspath(source)
        kind, _ = _classify(source)
        if kind == "stdin":
            yield from stdin_rows(defaults, opts)
        else:
            yield from _READERS[kind](source, defaults, opts)
