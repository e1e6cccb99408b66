"""Object bodies on disk, for the sandbox's own S3 server.

Bodies always live in files (a 1 GB object never sits in memory), written to a temp file first and
renamed into place only once complete, so a truncated upload can never become an object. Without
`data_dir` the files go to a temporary directory removed on close; with it, an index file keeps
buckets and object metadata across restarts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

import anyio.to_thread

from pipeline.sandbox.objects import ObjectInfo
from pipeline.sandbox.signing import Presigner

CHUNK = 1024 * 1024


def md5_of_file(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class LocalObjectStore:
    """All buckets of the local S3 server. Thread-safe: tests may read it from another thread."""

    def __init__(self, data_dir: Path | None) -> None:
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="slng-sandbox-s3-")
            root = Path(self._tmpdir.name)
        else:
            root = data_dir / "s3"
        self._objects_dir = root / "objects"
        self._tmp = root / "tmp"
        self._objects_dir.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._index_path = root / "index.json" if data_dir is not None else None
        self._lock = threading.Lock()
        self._buckets: set[str] = set()
        self._index: dict[tuple[str, str], ObjectInfo] = {}
        self._load()

    # --- persistence -------------------------------------------------------------------------

    def _load(self) -> None:
        if self._index_path is None or not self._index_path.exists():
            return
        data = json.loads(self._index_path.read_text())
        self._buckets = set(data["buckets"])
        for item in data["objects"]:
            info = ObjectInfo.model_validate(item)
            if self._file_for(info.bucket, info.key).exists():
                self._index[(info.bucket, info.key)] = info

    def _save(self) -> None:
        if self._index_path is None:
            return
        data = {
            "buckets": sorted(self._buckets),
            "objects": [info.model_dump() for info in self._index.values()],
        }
        tmp = self._index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._index_path)

    def close(self) -> None:
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    # --- buckets and objects -------------------------------------------------------------------

    def _file_for(self, bucket: str, key: str) -> Path:
        # Keys are arbitrary strings ("../x" included): never let one become a path.
        name = hashlib.sha256(f"{bucket}\0{key}".encode()).hexdigest()
        return self._objects_dir / name

    def create_bucket(self, name: str) -> None:
        with self._lock:
            self._buckets.add(name)
            self._save()

    def has_bucket(self, name: str) -> bool:
        with self._lock:
            return name in self._buckets

    def new_temp_path(self) -> Path:
        return self._tmp / f"upload-{uuid.uuid4().hex}"

    def commit(self, bucket: str, key: str, temp: Path, md5: str, size: int, content_type: str) -> ObjectInfo:
        """Make a fully written temp file the object's body (atomic rename)."""
        info = ObjectInfo(bucket=bucket, key=key, size=size, md5=md5, content_type=content_type)
        with self._lock:
            os.replace(temp, self._file_for(bucket, key))
            self._index[(bucket, key)] = info
            self._save()
        return info

    def info(self, bucket: str, key: str) -> ObjectInfo | None:
        with self._lock:
            return self._index.get((bucket, key))

    def path(self, bucket: str, key: str) -> Path | None:
        return self._file_for(bucket, key) if self.info(bucket, key) is not None else None

    def read_bytes(self, bucket: str, key: str, limit: int | None = None) -> bytes:
        path = self.path(bucket, key)
        if path is None:
            raise KeyError(f"{bucket}/{key}")
        with path.open("rb") as fh:
            return fh.read() if limit is None else fh.read(limit)

    def write_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> ObjectInfo:
        temp = self.new_temp_path()
        temp.write_bytes(data)
        return self.commit(bucket, key, temp, hashlib.md5(data).hexdigest(), len(data), content_type)

    def store_file(self, bucket: str, key: str, path: Path, content_type: str) -> ObjectInfo:
        temp = self.new_temp_path()
        shutil.move(path, temp)
        return self.commit(bucket, key, temp, md5_of_file(temp), temp.stat().st_size, content_type)

    def list(self) -> list[ObjectInfo]:
        with self._lock:
            return sorted(self._index.values(), key=lambda i: (i.bucket, i.key))


class LocalBucket:
    """`ObjectStore` over one bucket of the local store, presigning for the local S3 server."""

    def __init__(self, store: LocalObjectStore, bucket: str, presigner: Presigner) -> None:
        self.bucket = bucket
        self._store = store
        self._presigner = presigner

    def presign_put(self, key: str, content_type: str, expires_in: int) -> str:
        return self._presigner.presign_put(key, content_type, expires_in)

    def presign_get(self, key: str, expires_in: int) -> str:
        return self._presigner.presign_get(key, expires_in)

    async def head(self, key: str) -> ObjectInfo | None:
        return self._store.info(self.bucket, key)

    async def read(self, key: str, limit: int | None = None) -> bytes:
        return await anyio.to_thread.run_sync(self._store.read_bytes, self.bucket, key, limit)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        return await anyio.to_thread.run_sync(self._store.write_bytes, self.bucket, key, data, content_type)

    async def put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        return await anyio.to_thread.run_sync(self._store.store_file, self.bucket, key, path, content_type)

    def local_path(self, key: str) -> Path | None:
        return self._store.path(self.bucket, key)
