"""`exact_url`: aiohttp sends a presigned URL's path and query exactly as the API spelled them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from pipeline.errors import ErrorClass, TransferError
from pipeline.storage.presigned import exact_url

pytestmark = pytest.mark.anyio
SIGNED_QUERY = "X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=abc%2B%3D"


@pytest.fixture
async def request_lines() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback HTTP server that records each request line as it arrived, byte for byte."""
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n", 1)[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", seen


@pytest.mark.parametrize(
    "path",
    [
        "/bucket/inputs/j/apos%27trophe.wav",
        "/bucket/inputs/j/a%3Bb%26c%3Dd%21e%40f%24g%2Ah%28i%29j%2Ck%3Al.wav",
        "/bucket/inputs/j/pct%2520space%252Fslash%25.wav",
        "/bucket/inputs/j/%7Etilde%2Bplus%41.wav",
        "/bucket/inputs/j/caf%C3%A9%F0%9F%98%80.wav",
    ],
)
async def test_path_and_query_go_out_byte_for_byte(request_lines: tuple[str, list[bytes]], path: str) -> None:
    base, seen = request_lines
    url = f"{base}{path}?{SIGNED_QUERY}"
    async with aiohttp.ClientSession() as http:
        async with http.put(exact_url(url), data=b"x") as resp:
            assert resp.status == 200
        async with http.get(exact_url(url)) as resp:
            assert resp.status == 200
    expected = f"{path}?{SIGNED_QUERY}".encode()
    assert seen == [b"PUT " + expected + b" HTTP/1.1", b"GET " + expected + b" HTTP/1.1"]


async def test_only_what_cannot_be_sent_is_encoded(request_lines: tuple[str, list[bytes]]) -> None:
    base, seen = request_lines
    async with aiohttp.ClientSession() as http, http.get(exact_url(f"{base}/b/a b\u00e9%27.wav?x=1")) as resp:
        assert resp.status == 200
    assert seen == [b"GET /b/a%20b%C3%A9%27.wav?x=1 HTTP/1.1"]


def test_an_unusable_url_is_a_permanent_error_without_its_signature() -> None:
    with pytest.raises(TransferError) as caught:
        exact_url("https://s3.example:99999/b/k?X-Amz-Signature=secret0123")
    assert caught.value.error_class is ErrorClass.PERMANENT
    assert "secret0123" not in str(caught.value)
