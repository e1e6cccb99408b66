"""Audio already in object storage: list `s3://`, `gs://` or `az://` prefixes lazily and sign a GET
URL for each object just before its create request (one async API over obstore).

The clients (`CloudBucket`, `CloudStores`) need the `[cloud]` extra and are imported on first use,
so that the settings and the rest of the package import without obstore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.storage.cloud.cloud_options import DEFAULT_SIGN_EXPIRY, CloudObject, CloudOptions
from pipeline.storage.cloud.location import CloudLocation, parse_cloud_url

if TYPE_CHECKING:
    from pipeline.storage.cloud.bucket import CloudBucket
    from pipeline.storage.cloud.stores import CloudStores

__all__ = [
    "DEFAULT_SIGN_EXPIRY",
    "CloudBucket",
    "CloudLocation",
    "CloudObject",
    "CloudOptions",
    "CloudStores",
    "parse_cloud_url",
]


def __getattr__(name: str) -> Any:
    if name == "CloudBucket":
        from pipeline.storage.cloud.bucket import CloudBucket

        return CloudBucket
    if name == "CloudStores":
        from pipeline.storage.cloud.stores import CloudStores

        return CloudStores
    raise AttributeError(name)
