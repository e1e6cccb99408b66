"""Run Azurite (Azure Blob emulator, npm `azurite`) for the tests of the Azure listing and signing.

Found at `$SLNG_AZURITE_BIN`, else `~/.cache/slng-bulk/azurite/node_modules/.bin/azurite-blob`
(where `.ci/install-azurite.sh` puts it). Started once per test session on 127.0.0.1, a free port
and a temp folder, with its well-known development account; it verifies Shared Key signatures and
SAS (signature and expiry). Absent → the tests skip, or fail when `SLNG_REQUIRE_AZURITE=1`.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import http.client
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from tests.support.emulator import workspace
from tests.support.localstack import unique_bucket_name

ENV_BIN: Final = "SLNG_AZURITE_BIN"
ENV_REQUIRE: Final = "SLNG_REQUIRE_AZURITE"
DEFAULT_BIN: Final = (
    Path.home() / ".cache" / "slng-bulk" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
)
# Azurite's published development account (the same in every copy; not a secret).
ACCOUNT: Final = "devstoreaccount1"
ACCOUNT_KEY: Final = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
API_VERSION: Final = "2021-08-06"


@dataclass(frozen=True)
class Azurite:
    host: str
    port: int
    account: str = ACCOUNT
    account_key: str = ACCOUNT_KEY

    @property
    def endpoint(self) -> str:
        """The blob endpoint, path-style: the account is the first path segment."""
        return f"http://{self.host}:{self.port}/{self.account}"

    def create_container(self, prefix: str = "slng-test") -> str:
        """A new container, created with a Shared Key request signed here (as the SDKs do)."""
        name = unique_bucket_name(prefix)
        headers = {"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": API_VERSION}
        canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
        resource = f"/{self.account}/{self.account}/{name}\nrestype:container"
        to_sign = "PUT\n" + "\n" * 11 + canonical_headers + resource
        key = base64.b64decode(self.account_key)
        signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
        headers["Authorization"] = f"SharedKey {self.account}:{signature}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("PUT", f"/{self.account}/{name}?restype=container", headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 201:
            raise RuntimeError(f"Azurite refused to create container {name}: {resp.status} {body[:200]!r}")
        return name


def find_azurite() -> tuple[Path | None, str]:
    explicit = os.environ.get(ENV_BIN, "").strip()
    path = Path(explicit) if explicit else DEFAULT_BIN
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None, f"no Azurite at {path} (${ENV_BIN} or .ci/install-azurite.sh)"
    if shutil.which("node") is None:
        return None, "no node on PATH for Azurite"
    return path, str(path)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with workspace("Azurite", find_azurite(), ENV_REQUIRE) as ws:
        args = [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(ws.port),
            "--location",
            str(ws.folder / "data"),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--disableProductStyleUrl",
            "--silent",
        ]
        with ws.running(args, "/"):
            yield Azurite("127.0.0.1", ws.port)
