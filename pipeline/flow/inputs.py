"""The rows a command reads: its sources checked up front, then streamed.

A module of its own so that a dry run reaches its rows without importing the HTTP stack.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pipeline.config.settings import Settings
from pipeline.errors import ConfigError
from pipeline.sources.readers import ManifestError, check_sources, iter_rows
from pipeline.sources.rows import Row


def open_sources(sources: Sequence[str], settings: Settings) -> Iterator[Row]:
    """Check every source up front (a whole-manifest problem is a usage error), then stream rows
    (only those of `--shard I/N` when it is given)."""
    options = settings.source_options()
    try:
        check_sources(sources, options)
    except ManifestError as exc:
        raise ConfigError(str(exc)) from None
    rows = iter_rows(sources, settings.job_defaults(), options)
    return settings.shard.select(rows) if settings.shard is not None else rows
