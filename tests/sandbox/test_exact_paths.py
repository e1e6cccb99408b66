"""The sandbox S3 checks the signature over the path as sent, as GCS and CloudFront do.

A URL normalised on the way out (`%27` sent as `'`, `%3B` as `;`) is refused with 403
SignatureDoesNotMatch; the same URL sent byte for byte is accepted and stored under its key. So a
client that re-encodes presigned URLs fails against the sandbox, not first in production.
"""

from __future__ import annotations

import hashlib

import pytest
from yarl import URL

from pipeline.sandbox import Sandbox
from tests.sandbox.helpers import presign_get_url, presign_put_url, raw_http, s3_client, s3_error_code

pytestmark = pytest.mark.anyio
BODY = b"exact path" * 100
KEYS = ["inputs/x/apos'trophe.wav", "inputs/x/semi;colon.wav", "inputs/x/a(b),c:d@e!f$g*h&i=j.wav"]


def reencoded(url: str) -> str:
    """The URL as aiohttp sends a string it was given: normalised by yarl."""
    return str(URL(url))


@pytest.mark.parametrize("key", KEYS)
async def test_a_reencoded_path_is_refused_and_the_exact_one_stored(sandbox: Sandbox, key: str) -> None:
    client = s3_client(sandbox)
    url = presign_put_url(client, sandbox.bucket, key)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(BODY))}
    assert reencoded(url) != url  # yarl does change it: the case is real

    status, body = await raw_http(reencoded(url), "PUT", headers, BODY)
    assert status == 403 and s3_error_code(body)[0] == "SignatureDoesNotMatch"
    assert sandbox.object_info(key) is None

    status, _ = await raw_http(url, "PUT", headers, BODY)
    assert status == 200
    info = sandbox.object_info(key)
    assert info is not None and info.md5 == hashlib.md5(BODY).hexdigest()

    get_url = presign_get_url(client, sandbox.bucket, key)
    status, body = await raw_http(reencoded(get_url), "GET", {})
    assert status == 403 and s3_error_code(body)[0] == "SignatureDoesNotMatch"
    status, body = await raw_http(get_url, "GET", {})
    assert status == 200 and body == BODY
