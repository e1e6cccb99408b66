"""A loopback HTTP pass-through that counts the requests it forwards, so a test can prove that a
listing really went over several pages. The Host header is forwarded as received (`keep_host`), so
SigV4 signatures made for the proxy's address still verify upstream; fake-gcs-server routes by Host,
so for it the upstream's own is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

from tests.support.loopback import serving

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


@dataclass
class CountingProxy:
    upstream: str
    url: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, raw path with query)

    def count(self, query_part: str) -> int:
        return sum(1 for _, path in self.requests if query_part in path)


@asynccontextmanager
async def counting_proxy(upstream: str, keep_host: bool = True) -> AsyncIterator[CountingProxy]:
    proxy = CountingProxy(upstream.rstrip("/"))
    async with aiohttp.ClientSession(auto_decompress=False) as http:

        async def forward(request: web.Request) -> web.StreamResponse:
            proxy.requests.append((request.method, request.raw_path))
            dropped = HOP_BY_HOP if keep_host else HOP_BY_HOP | {"host"}
            headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
            body = await request.read()
            async with http.request(
                request.method,
                URL(proxy.upstream + request.raw_path, encoded=True),
                headers=headers,
                data=body if body else None,
                skip_auto_headers=("Content-Type", "User-Agent", "Accept-Encoding"),
                allow_redirects=False,
            ) as resp:
                payload = await resp.read()
                out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(status=resp.status, body=payload, headers=out)

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", forward)
        async with serving(app) as proxy.url:
            yield proxy
