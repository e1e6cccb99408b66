"""Audio already in object storage: list `s3://`, `gs://` or `az://` prefixes lazily and sign a GET
URL for each object just before its create request (one async API over obstore)."""

from pipeline.storage.cloud.bucket import DEFAULT_SIGN_EXPIRY, CloudBucket, CloudObject, CloudOptions
from pipeline.storage.cloud.location import CloudLocation, parse_cloud_url

__all__ = [
    "DEFAULT_SIGN_EXPIRY",
    "CloudBucket",
    "CloudLocation",
    "CloudObject",
    "CloudOptions",
    "parse_cloud_url",
]
