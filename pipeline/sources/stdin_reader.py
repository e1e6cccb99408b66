"""`-`: stdin, one path or one JSON object per line; it may never close, so it is read lazily."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

from pipeline.sources.checks import SourceContext, SourceOptions
from pipeline.sources.jsonl_reader import line_rows
from pipeline.sources.lines import binary_lines, text_lines
from pipeline.sources.rows import JobSettings, Row


def stdin_rows(defaults: JobSettings, options: SourceOptions) -> Iterator[Row]:
    root = os.getcwd()
    ctx = SourceContext.under("-", root, options, defaults)
    if options.stdin is not None:
        lines = text_lines(options.stdin)
    else:
        buffer = getattr(sys.stdin, "buffer", None)
        lines = binary_lines(buffer) if buffer is not None else text_lines(sys.stdin)
    yield from line_rows(ctx, lines, allow_paths=True)
