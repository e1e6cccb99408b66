"""One `CloudBucket` per bucket a run touches, made on first use, with the run's cloud options.

A run may name objects of many buckets (a manifest of `url` rows); each bucket's client is made
once and reused for every object in it, for its HEADs and its late signatures alike.
"""

from __future__ import annotations

import datetime as dt
import threading

from pipeline.storage.cloud.bucket import CloudBucket
from pipeline.storage.cloud.cloud_options import CloudObject, CloudOptions
from pipeline.storage.cloud.location import CloudLocation, object_location, parse_cloud_url


class CloudStores:
    """The run's buckets, by (scheme, bucket). Safe to share between the loop and the reader thread."""

    def __init__(self, options: dict[str, CloudOptions]) -> None:
        self._options = options  # by scheme: s3, gs, az
        self._buckets: dict[tuple[str, str], CloudBucket] = {}
        self._lock = threading.Lock()

    def options_for(self, scheme: str) -> CloudOptions:
        return self._options.get(scheme) or CloudOptions()

    def bucket_for(self, location: CloudLocation) -> CloudBucket:
        with self._lock:
            key = (location.scheme, location.bucket)
            bucket = self._buckets.get(key)
            if bucket is None:
                whole = CloudLocation(location.scheme, location.bucket, "")
                bucket = self._buckets[key] = CloudBucket(whole, self.options_for(location.scheme))
            return bucket

    def prefix(self, url: str) -> CloudBucket:
        """A bucket client listing under the prefix `url` names (not shared: its own prefix)."""
        location = parse_cloud_url(url)
        return CloudBucket(location, self.options_for(location.scheme))

    async def head(self, url: str) -> CloudObject | None:
        location, key = object_location(url)
        return await self.bucket_for(location).head(key)

    async def sign_get(self, url: str, expires: dt.timedelta | None = None) -> str:
        """A GET URL for the object `url` names (scheme://bucket/key), signed now. A secret."""
        location, key = object_location(url)
        return await self.bucket_for(location).sign_get(key, expires)
