"""Rows handed over by a library caller: paths, or dicts with the JSONL keys.

The same checks as a manifest's rows (a bad one is a Rejection naming its position in the
iterable, the others go on), so code that builds its work list in memory needs no temporary file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pipeline.sources.checks import SourceContext, SourceOptions, file_row, reject
from pipeline.sources.jsonl_reader import object_row
from pipeline.sources.remote import is_url, url_row
from pipeline.sources.rows import JobSettings, Row

RowInput = str | os.PathLike[str] | Mapping[str, Any]


def object_rows(
    items: Iterable[RowInput],
    defaults: JobSettings,
    options: SourceOptions | None = None,
    *,
    source: str = "<rows>",
) -> Iterator[Row]:
    """Lazily check each item: a path (relative to the working directory) or a dict such as
    `{"path": "a.wav", "transcription_config": {"language": "fr"}, "extra": {...}}`.

    Rejections name `source` and the item's 1-based position, like a manifest line.
    """
    opts = options if options is not None else SourceOptions()
    root = os.getcwd()
    ctx = SourceContext.under(source, root, opts, defaults)
    for position, item in enumerate(items, start=1):
        if isinstance(item, Mapping):
            yield object_row(ctx, position, dict(item))
        elif isinstance(item, str) and is_url(item):
            yield url_row(source, position, item, None, defaults, allow_http=ctx.allow_http)
        elif isinstance(item, str | os.PathLike):
            yield file_row(ctx, position, os.fspath(item), None, defaults)
        else:
            yield reject(source, position, None, f"expected a path or a mapping, got {type(item).__name__}")
