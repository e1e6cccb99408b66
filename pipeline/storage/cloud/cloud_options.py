"""How a cloud store's client is made, and what a listing says of one object: plain values, so
that the settings can name them without importing the storage client (the `[cloud]` extra)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

# Long enough for the service to fetch the audio after the job waited in its queue; SigV4 allows
# 7 days, but temporary credentials (a role, SSO) end a URL when they end, whatever it says.
DEFAULT_SIGN_EXPIRY: Final = dt.timedelta(hours=6)
MAX_SIGN_EXPIRY: Final = dt.timedelta(days=7)
LIST_CHUNK: Final = 1000


@dataclass(frozen=True)
class CloudOptions:
    endpoint: str | None = None  # an S3-compatible store or an emulator; None = the cloud itself
    allow_http: bool = False  # plain http to `endpoint` (emulators on loopback, a LAN MinIO)
    region: str | None = None  # S3 only; default: the AWS profile's region, else us-east-1
    sign_expiry: dt.timedelta = DEFAULT_SIGN_EXPIRY
    list_chunk: int = LIST_CHUNK


@dataclass(frozen=True)
class CloudObject:
    """One listed object. Its identity is url + (version or etag) + size, never the key alone."""

    url: str  # scheme://bucket/key, no query
    key: str
    size: int
    etag: str | None
    version: str | None
    last_modified: dt.datetime
