"""What the cloud storage tests share: filling a prefix, listing it page by page, fetching a signed
URL byte for byte (or once expired)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable, Sequence

import aiohttp
import obstore
from obstore.store import AzureStore, GCSStore, S3Store
from yarl import URL

from pipeline.storage.cloud import CloudBucket, CloudObject
from tests.support.counting_proxy import CountingProxy

AUDIO_PREFIX = b"RIFF\x24\x00\x00\x00WAVEfmt "


def body_for(key: str) -> bytes:
    return AUDIO_PREFIX + key.encode()


async def fill(store: S3Store | AzureStore | GCSStore, keys: Iterable[str], parallel: int = 32) -> None:
    gate = asyncio.Semaphore(parallel)

    async def put(key: str) -> None:
        async with gate:
            await obstore.put_async(store, key, body_for(key))

    await asyncio.gather(*(put(k) for k in keys))


async def fetch(url: str) -> tuple[int, bytes]:
    """GET a signed URL exactly as signed (yarl would otherwise re-encode it) with no auth header."""
    async with (
        aiohttp.ClientSession(trust_env=False) as http,
        http.get(URL(url, encoded=True)) as resp,
    ):
        return resp.status, await resp.read()


def wait_past(moment: dt.datetime) -> None:
    """Block until the wall clock is past `moment` (an expiry is a point in time, not an event)."""
    while dt.datetime.now(dt.UTC) <= moment:
        time.sleep(0.05)


async def fetch_after_expiry(bucket: CloudBucket, key: str) -> tuple[int, bytes]:
    """GET `key` signed for one second, once that second is past."""
    signed_at = dt.datetime.now(dt.UTC)
    url = await bucket.sign_get(key, dt.timedelta(seconds=1))
    wait_past(signed_at + dt.timedelta(seconds=2))
    return await fetch(url)


async def list_lazily(
    bucket: CloudBucket, proxy: CountingProxy, list_query: str
) -> tuple[Sequence[CloudObject], list[str]]:
    """The first page and every key (sorted) of `bucket`'s prefix, listed page by page through
    `proxy`; the first page must have cost one list request (`list_query`), not the whole prefix."""
    listing = bucket.pages()
    first = await anext(listing)
    assert proxy.count(list_query) == 1  # one page asked for, not the whole prefix
    seen = [o.key for o in first]
    async for page in listing:
        seen += [o.key for o in page]
    return first, sorted(seen)
