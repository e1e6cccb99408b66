"""The rows a command reads: its sources checked up front, then streamed.

A module of its own so that a dry run reaches its rows without importing the HTTP stack.
Local sources (manifests, folders, stdin) are read by `pipeline.sources`; a cloud prefix
(`s3://`, `gs://`, `az://`) is listed by `flow.cloud_rows`, and a manifest's cloud `url` rows are
completed there with a HEAD; a source that is one `https://` URL is one row.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence

from pipeline.config.settings import Settings
from pipeline.errors import ConfigError
from pipeline.flow.cloud_rows import (
    check_cloud_source,
    check_url_rows,
    cloud_prefix_rows,
    completed_url_rows,
    open_stores,
)
from pipeline.sources.checks import WalkTally
from pipeline.sources.readers import ManifestError, check_sources, iter_rows
from pipeline.sources.remote import is_cloud_url, is_url, url_row
from pipeline.sources.rows import Row
from pipeline.sources.url_cells import cloud_url_cells


def open_sources(sources: Sequence[str], settings: Settings, tally: WalkTally | None = None) -> Iterator[Row]:
    """Check every source up front (a whole-manifest problem is a usage error; a cloud prefix, and
    each bucket a manifest's `url` cells name, must be readable and signable with the credentials
    at hand, before any job is created), then stream rows (only those of `--shard I/N` when it is
    given). Stdin is read once, so its `url` rows are checked as they come. `tally` counts what
    folder walks leave out."""
    options = settings.source_options()
    local = [source for source in sources if not is_url(source)]
    try:
        check_sources(local, options)
    except ManifestError as exc:
        raise ConfigError(str(exc)) from None
    stores = None
    if any(is_cloud_url(source) for source in sources):
        stores = open_stores(settings)
        for source in sources:
            if is_cloud_url(source):
                check_cloud_source(source, stores)
    urls = itertools.chain.from_iterable(cloud_url_cells(source) for source in local)
    if (first := next(urls, None)) is not None:  # a manifest with cloud url rows: their buckets too
        stores = stores or open_stores(settings)
        check_url_rows(itertools.chain([first], urls), stores)
    rows = _rows(sources, settings, tally)
    if stores is None:
        rows = completed_lazily(rows, settings)
    else:
        rows = completed_url_rows(rows, stores, options.max_file_bytes)
    return settings.shard.select(rows) if settings.shard is not None else rows


def _rows(sources: Sequence[str], settings: Settings, tally: WalkTally | None) -> Iterator[Row]:
    options, defaults = dataclasses.replace(settings.source_options(), tally=tally), settings.job_defaults()
    for source in sources:
        if is_cloud_url(source):
            yield from cloud_prefix_rows(source, defaults, options, open_stores(settings))
        elif is_url(source):
            yield url_row(source, None, source, None, defaults, allow_http=options.allow_http_urls)
        else:
            yield from iter_rows([source], defaults, options)


def completed_lazily(rows: Iterator[Row], settings: Settings) -> Iterator[Row]:
    """Cloud `url` rows (of a manifest, stdin or a library caller's rows) completed with a HEAD,
    so that their identity holds the object's version and size; the cloud clients are made when
    the first one comes, and its refused credentials stop the run (exit 8)."""
    for row in rows:
        remote = getattr(row, "remote", None)
        if remote is not None and not remote.resolved:
            stores = open_stores(settings)
            yield from completed_url_rows(_chain(row, rows), stores, settings.source_options().max_file_bytes)
            return
        yield row


def _chain(first: Row, rest: Iterator[Row]) -> Iterator[Row]:
    yield first
    yield from rest
