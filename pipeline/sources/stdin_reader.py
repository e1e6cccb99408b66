"""`-`: stdin, one path or one JSON object per line; it may never close, so it is read lazily."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator

from pipeline.sources.checks import SourceContext, SourceOptions, file_row, reject
from pipeline.sources.jsonl_reader import line_rows
from pipeline.sources.lines import binary_lines, null_records, text_lines
from pipeline.sources.rows import JobSettings, Row


def stdin_rows(defaults: JobSettings, options: SourceOptions) -> Iterator[Row]:
    root = os.getcwd()
    ctx = SourceContext.under("-", root, options, defaults)
    if options.null_separated:
        yield from null_path_rows(ctx, options)
        return
    if options.stdin is not None:
        lines = text_lines(options.stdin)
    else:
        buffer = getattr(sys.stdin, "buffer", None)
        lines = binary_lines(buffer) if buffer is not None else text_lines(sys.stdin)
    yield from line_rows(ctx, lines, allow_paths=True)


def null_path_rows(ctx: SourceContext, options: SourceOptions) -> Iterator[Row]:
    """`-0`: NUL-separated paths (find -print0), taken exactly as given: no JSON, no trimming."""
    stream = io.BytesIO(options.stdin.read().encode("utf-8", "surrogateescape")) if options.stdin else None
    for number, text, problem in null_records(stream or sys.stdin.buffer):
        if problem is not None:
            yield reject(ctx.source, number, None, problem)
        else:
            yield file_row(ctx, number, text, None, ctx.cache.defaults)
