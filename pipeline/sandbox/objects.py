"""The object-store seam: what the API needs from "the bucket", local or external.

The API only presigns, checks, reads and writes objects; behind this protocol the bucket is either
the sandbox's own strict S3 server (`local_store.LocalBucket`) or any S3-compatible endpoint
reached through botocore (`external_store.ExternalBucket`), so the same pipeline run can target
LocalStack or a real bucket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel


class ObjectInfo(BaseModel):
    """One stored object as `/__sandbox__/objects` reports it."""

    bucket: str
    key: str
    size: int
    md5: str  # hex, the single-part ETag without quotes
    content_type: str = "application/octet-stream"


class ObjectStore(Protocol):
    """One bucket, seen from the API."""

    bucket: str

    def presign_put(self, key: str, content_type: str, expires_in: int) -> str: ...

    def presign_get(self, key: str, expires_in: int) -> str: ...

    async def head(self, key: str) -> ObjectInfo | None: ...

    async def read(self, key: str, limit: int | None = None) -> bytes:
        """The first `limit` bytes of the object (all of it when None)."""
        ...

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo: ...

    async def put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        """Store a local file (mode A upload); the file may be moved or consumed."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A path to the object's bytes when they are on this machine, for mutagen."""
        ...
