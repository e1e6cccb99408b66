"""Where the audio is: `s3://bucket/prefix/`, `gs://bucket/prefix/` or `az://container/prefix/`.

`az://` is the spelling fsspec/adlfs and obstore use; the storage account is not in the URL but
comes from the environment (`AZURE_STORAGE_ACCOUNT_NAME`) or the endpoint, as those tools do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from pipeline.errors import ConfigError

Scheme = Literal["s3", "gs", "az"]
SCHEMES: Final[tuple[Scheme, ...]] = ("s3", "gs", "az")


@dataclass(frozen=True)
class CloudLocation:
    scheme: Scheme
    bucket: str  # the Azure container for az://
    prefix: str  # "" or a key prefix without a leading slash

    def url_for(self, key: str) -> str:
        """The object's identity as a URL without any query (never a signature)."""
        return f"{self.scheme}://{self.bucket}/{key}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}"


def parse_cloud_url(text: str) -> CloudLocation:
    """A cloud prefix URL, or ConfigError naming what is wrong with it."""
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"not a cloud storage URL: {text!r} (expected s3://, gs:// or az://)")
    if parts.query or parts.fragment:
        raise ConfigError(f"a cloud storage URL takes no query or fragment: {scheme}://{parts.netloc}/…")
    bucket = parts.netloc
    if not bucket or "@" in bucket or ":" in bucket:
        raise ConfigError(f"no bucket or container in {text!r} (expected {scheme}://NAME/prefix/)")
    prefix = parts.path.lstrip("/")
    return CloudLocation(scheme=scheme, bucket=bucket, prefix=prefix)


def object_location(url: str) -> tuple[CloudLocation, str]:
    """The bucket and key of an object's identity URL (`CloudLocation.url_for`), split by hand:
    a listed key may hold '?' or '#', which a URL parser would take for a query or a fragment."""
    scheme, _, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    location = parse_cloud_url(f"{scheme}://{bucket}/")
    return location, key
