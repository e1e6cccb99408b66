"""The small HTTP servers tests stand beside the code under test (an origin, a proxy, a fake API),
served on 127.0.0.1 for the length of a block."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestServer


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` at a free loopback port until the block ends; yield its base URL (no trailing /)."""
    async with TestServer(app, host="127.0.0.1") as server:
        yield f"http://127.0.0.1:{server.port}"
