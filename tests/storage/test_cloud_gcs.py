"""GCS listing and V4 signing against fake-gcs-server. The emulator checks no signature, so the
signed URL's RSA signature is verified here, over the canonical request, with the public half of
the throwaway service-account key (`openssl dgst -verify`), and its expiry read from the URL."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from pipeline.storage.cloud import CloudBucket, CloudOptions, parse_cloud_url
from tests.storage.cloud_helpers import body_for, fetch
from tests.support.cloud_env import bucket_at
from tests.support.counting_proxy import counting_proxy
from tests.support.gcs_emulator import FakeGcs

pytestmark = pytest.mark.anyio
# obstore signs the host of real GCS even when the requests go to an emulator's base URL (found
# here: the signature verifies over this host, not over the emulator's); right for production.
SIGNED_HOST = "storage.googleapis.com"
# fake-gcs-server answers an XML listing in one page whatever its size (no max-keys, no
# continuation token), so paging itself is proven on S3 and Azure only; here the listing's content.
OBJECTS = 300


def signature_verifies(url: str, public_key: Path, tmp: Path) -> bool:
    """GCS V4: RSA-SHA256 over "GOOG4-RSA-SHA256\\n<date>\\n<scope>\\n<sha256(canonical request)>"."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    signature = dict(params)["X-Goog-Signature"]
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(params)
        if k != "X-Goog-Signature"
    )
    canonical = f"GET\n{parts.path}\n{query}\nhost:{SIGNED_HOST}\n\nhost\nUNSIGNED-PAYLOAD"
    fields = dict(params)
    scope = fields["X-Goog-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        ["GOOG4-RSA-SHA256", fields["X-Goog-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    (tmp / "data").write_bytes(to_sign.encode())
    (tmp / "sig").write_bytes(bytes.fromhex(signature))
    check = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            str(public_key),
            "-signature",
            str(tmp / "sig"),
            str(tmp / "data"),
        ],
        capture_output=True,
    )
    return check.returncode == 0


async def test_listing_yields_every_object_under_the_prefix(gcs_env: FakeGcs) -> None:
    name = gcs_env.create_bucket()
    keys = [f"calls/{i:05d}.wav" for i in range(OBJECTS)]
    for key in [*keys, "other/x.wav"]:
        gcs_env.upload(name, key, body_for(key))
    async with counting_proxy(gcs_env.endpoint, keep_host=False) as proxy:
        bucket = CloudBucket(
            parse_cloud_url(f"gs://{name}/calls/"),
            CloudOptions(endpoint=proxy.url, allow_http=True, list_chunk=100),
        )
        pages = [page async for page in bucket.pages()]
    assert sorted(o.key for page in pages for o in page) == keys
    assert [len(p) for p in pages] == [100, 100, 100]  # handed out in chunks, one server page
    assert proxy.count("list-type=2") == 1
    first = pages[0]
    item = first[0]
    assert item.url == f"gs://{name}/{item.key}" and item.size == len(body_for(item.key))


async def test_signed_get_verifies_and_fetches_the_exact_bytes(gcs_env: FakeGcs, tmp_path: Path) -> None:
    name = gcs_env.create_bucket()
    key = "calls/a b+c;d'e.wav"
    gcs_env.upload(name, key, body_for(key))
    url = await bucket_at(gcs_env.endpoint, f"gs://{name}/").sign_get(key)
    assert "X-Goog-Expires=21600" in url
    assert signature_verifies(url, gcs_env.public_key_file, tmp_path)
    tampered = url.replace("X-Goog-Expires=21600", "X-Goog-Expires=604800")
    assert not signature_verifies(tampered, gcs_env.public_key_file, tmp_path)
    assert await fetch(url) == (200, body_for(key))
