"""Rows of audio already in object storage: a listed `s3://`/`gs://`/`az://` prefix, and manifest
`url` rows completed with a HEAD. Both run where the other sources are read: on the row feed's own
thread (`flow.feed`), which drives the async storage client on a private event loop, one listing
page at a time, so the listing is never held whole and the run's loop never waits on it.

Only the object's identity is read here (key, size, version): its GET URL is signed later, just
before its create request (`Journey.create_from_url`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.config.settings import Settings
from pipeline.errors import ConfigError, TransferError
from pipeline.sources.checks import SourceOptions, reject
from pipeline.sources.remote import RemoteObject, remote_spec
from pipeline.sources.rows import FileSpec, JobSettings, Row
from pipeline.sources.walk import compile_globs, wanted
from pipeline.storage.cloud import CloudObject
from pipeline.storage.cloud.location import object_location

if TYPE_CHECKING:
    from pipeline.storage.cloud.stores import CloudStores

T = TypeVar("T")


class PrivateLoop:
    """An event loop of the reader thread's own, to drive the async storage client from it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, coro: Awaitable[T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self.run(anext(items))
            except StopAsyncIteration:
                return

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()


def run_apart(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end on a thread of its own: callable from inside a running loop too
    (the up-front checks run before the run's loop has work, and a dry run has no loop)."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="slng-bulk-cloud-check", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def open_stores(settings: Settings) -> CloudStores:
    """The run's cloud clients; a one-line ConfigError when the `[cloud]` extra is not installed."""
    try:
        from pipeline.storage.cloud.stores import CloudStores
    except ImportError:
        raise ConfigError(
            "object storage sources and url rows need the cloud extra: pip install 'slng-bulk[cloud]'"
        ) from None
    return CloudStores(settings.cloud_options())


def check_cloud_source(url: str, stores: CloudStores) -> None:
    """Before any job is created: the prefix can be listed and its objects signed with the
    credentials at hand (one listing page, one signature made locally), else one ConfigError line."""
    bucket = stores.prefix(url)

    async def probe() -> None:
        pages = bucket.pages()
        try:
            await anext(pages, None)
        finally:
            await pages.aclose()
        await bucket.sign_get(bucket.location.prefix + "slng-bulk-credentials-check.wav")

    run_apart(probe)


def check_url_rows(urls: Iterable[str], stores: CloudStores) -> None:
    """Before any job is created: each bucket the `url` cells name is reachable with the
    credentials at hand (one HEAD of its first object, one signature made locally), else one
    ConfigError line. A missing object or a transient failure is left to that row, when read."""
    firsts: dict[tuple[str, str], str] = {}  # one URL per bucket, not per row
    for url in urls:
        try:
            location, _key = object_location(url)
        except ConfigError:
            continue  # not an object URL: its row is rejected when read
        if "?" not in url and "#" not in url:
            firsts.setdefault((location.scheme, location.bucket), url)

    async def probe() -> None:
        for url in firsts.values():
            with contextlib.suppress(TransferError):
                await stores.head(url)
            await stores.sign_get(url)

    run_apart(probe)


def _listed_spec(url: str, item: CloudObject, rel: str, defaults: JobSettings) -> FileSpec:
    remote = RemoteObject(item.url, version=item.version or item.etag)
    mtime_ns = int(item.last_modified.timestamp() * 1e9)
    return remote_spec(
        url,
        None,
        remote,
        size=item.size,
        mtime_ns=mtime_ns,
        job_id=None,
        settings=defaults,
        relative_path=rel,
    )


def cloud_prefix_rows(
    url: str, defaults: JobSettings, options: SourceOptions, stores: CloudStores
) -> Iterator[Row]:
    """The audio objects under a prefix, page by page, taken by the folder walk's rules (audio
    extensions, --include/--exclude on the key relative to the prefix, hidden names skipped)."""
    bucket = stores.prefix(url)
    prefix = bucket.location.prefix
    include, exclude = compile_globs(options.include), compile_globs(options.exclude)
    loop = PrivateLoop()
    try:
        for page in loop.iterate(bucket.pages()):
            for item in page:
                rel = item.key[len(prefix) :] if item.key.startswith(prefix) else item.key
                rel = rel.lstrip("/")
                name = rel.rsplit("/", 1)[-1]
                if not name or any(part.startswith(".") for part in rel.split("/")):
                    continue  # a folder marker, or a hidden name, as a walk skips them
                if not wanted(rel, name, include, exclude):
                    continue
                if item.size == 0:
                    yield reject(url, None, item.url, "empty object (0 bytes)")
                elif item.size > options.max_file_bytes:
                    limit = options.max_file_bytes
                    yield reject(url, None, item.url, f"object too large ({item.size} bytes, limit {limit})")
                else:
                    yield _listed_spec(url, item, rel, defaults)
    finally:
        loop.close()


def completed_url_rows(rows: Iterable[Row], stores: CloudStores, max_bytes: int) -> Iterator[Row]:
    """Manifest rows given by a cloud `url`, completed with a HEAD (size, version, last change);
    every other row passes as it is. Credentials refused: the run stops (ConfigError, exit 8)."""
    loop = PrivateLoop()
    try:
        for row in rows:
            remote = row.remote if isinstance(row, FileSpec) else None
            if remote is None or remote.resolved:
                yield row
                continue
            assert isinstance(row, FileSpec)
            try:
                item = loop.run(stores.head(remote.url))
            except TransferError as exc:  # transient, after the client's retries: the next run retries
                yield reject(row.source, row.line, row.path_text, f"cannot read the object: {exc}")
                continue
            if item is None:
                yield reject(row.source, row.line, row.path_text, "object not found")
            elif item.size == 0:
                yield reject(row.source, row.line, row.path_text, "empty object (0 bytes)")
            elif item.size > max_bytes:
                why = f"object too large ({item.size} bytes, limit {max_bytes})"
                yield reject(row.source, row.line, row.path_text, why)
            else:
                found = RemoteObject(remote.url, version=item.version or item.etag)
                yield remote_spec(
                    row.source,
                    row.line,
                    found,
                    size=item.size,
                    mtime_ns=int(item.last_modified.timestamp() * 1e9),
                    job_id=row.job_id,
                    settings=row.settings,
                    relative_path=row.relative_path,
                )
    finally:
        loop.close()
