"""`ObjectStore` over an external S3-compatible endpoint (LocalStack, MinIO, AWS) via botocore.

botocore is synchronous, so every call runs in a worker thread (anyio.to_thread) to keep the
sandbox's event loop responsive.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import anyio.to_thread
from botocore.exceptions import ClientError

from pipeline.sandbox.config import S3Credentials
from pipeline.sandbox.objects import ObjectInfo
from pipeline.sandbox.signing import Presigner, make_s3_client


class ExternalBucket:
    def __init__(self, endpoint_url: str, bucket: str, creds: S3Credentials) -> None:
        self.bucket = bucket
        self._presigner = Presigner(endpoint_url, bucket, creds)
        self._client: Any = make_s3_client(endpoint_url, creds)
        self.known: dict[str, ObjectInfo] = {}  # objects this API has seen, for /__sandbox__/objects

    def presign_put(self, key: str, content_type: str, expires_in: int) -> str:
        return self._presigner.presign_put(key, content_type, expires_in)

    def presign_get(self, key: str, expires_in: int) -> str:
        return self._presigner.presign_get(key, expires_in)

    def _head(self, key: str) -> ObjectInfo | None:
        try:
            meta = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(
            bucket=self.bucket,
            key=key,
            size=int(meta["ContentLength"]),
            md5=str(meta.get("ETag", "")).strip('"'),
            content_type=str(meta.get("ContentType") or "application/octet-stream"),
        )

    async def head(self, key: str) -> ObjectInfo | None:
        info = await anyio.to_thread.run_sync(self._head, key)
        if info is not None:
            self.known[key] = info
        return info

    def _read(self, key: str, limit: int | None) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if limit is not None:
            kwargs["Range"] = f"bytes=0-{max(0, limit - 1)}"
        body = self._client.get_object(**kwargs)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    async def read(self, key: str, limit: int | None = None) -> bytes:
        return await anyio.to_thread.run_sync(self._read, key, limit)

    def _put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        md5 = hashlib.md5(data).hexdigest()
        return ObjectInfo(bucket=self.bucket, key=key, size=len(data), md5=md5, content_type=content_type)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        info = await anyio.to_thread.run_sync(self._put_bytes, key, data, content_type)
        self.known[key] = info
        return info

    def _put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        with path.open("rb") as fh:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=fh, ContentType=content_type)
        info = self._head(key)
        path.unlink(missing_ok=True)
        if info is None:
            raise RuntimeError(f"object {key} missing right after upload")
        return info

    async def put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        info = await anyio.to_thread.run_sync(self._put_file, key, path, content_type)
        self.known[key] = info
        return info

    def local_path(self, key: str) -> Path | None:
        return None
