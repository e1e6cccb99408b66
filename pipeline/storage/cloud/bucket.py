"""One cloud prefix: list its objects page by page, and sign a GET URL for one of them.

Listing is lazy: obstore's stream asks the store for the next page (1 000 keys on S3 and GCS, 5 000
on Azure) only when the previous one has been consumed, so memory holds one page whatever the size
of the bucket. URLs are signed one at a time, just before the create request that uses them.
Credentials come from each cloud's standard chain, as obstore (and, for AWS profiles, botocore)
resolve it; they are never logged. Failures surface at the first list call as one-line
`ConfigError`s (exit 8) or transient `TransferError`s, with no secret in the text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import obstore
from obstore.store import AzureStore, GCSStore, S3Store

from pipeline.errors import ConfigError
from pipeline.storage.cloud import azure_sas
from pipeline.storage.cloud.aws_chain import BotocoreCredentials
from pipeline.storage.cloud.cloud_options import MAX_SIGN_EXPIRY, CloudObject, CloudOptions
from pipeline.storage.cloud.failures import is_not_found, translate
from pipeline.storage.cloud.location import CloudLocation

if TYPE_CHECKING:
    from obstore import ObjectMeta
    from obstore.store import ClientConfig, RetryConfig

# obstore retries 10 times over up to 3 minutes by default; a listing that cannot start should say
# so sooner (a missing metadata server, a wrong endpoint).
RETRIES: Final[RetryConfig] = {"max_retries": 3, "retry_timeout": dt.timedelta(seconds=30)}

Store = S3Store | GCSStore | AzureStore


class CloudBucket:
    def __init__(self, location: CloudLocation, options: CloudOptions | None = None) -> None:
        self.location = location
        self.options = options or CloudOptions()
        self._aws: BotocoreCredentials | None = None
        self._store = self._open()

    def _open(self) -> Store:
        opts = self.options
        if not dt.timedelta(seconds=1) <= opts.sign_expiry <= MAX_SIGN_EXPIRY:
            raise ConfigError(f"sign expiry must be between 1 s and 7 days, not {opts.sign_expiry}")
        if opts.endpoint is not None:
            scheme = urlsplit(opts.endpoint).scheme
            if scheme not in ("http", "https") or (scheme == "http" and not opts.allow_http):
                raise ConfigError(
                    f"cloud endpoint must be an https URL (plain http needs allow-http): {opts.endpoint}"
                )
        client: ClientConfig = {"allow_http": opts.allow_http}
        bucket = self.location.bucket
        try:
            if self.location.scheme == "s3":
                return self._open_s3(client)
            if self.location.scheme == "gs":
                if opts.endpoint is not None:
                    return GCSStore(
                        bucket, base_url=opts.endpoint, client_options=client, retry_config=RETRIES
                    )
                return GCSStore(bucket, client_options=client, retry_config=RETRIES)
            if opts.endpoint is not None:
                return AzureStore(bucket, endpoint=opts.endpoint, client_options=client, retry_config=RETRIES)
            return AzureStore(bucket, client_options=client, retry_config=RETRIES)
        except Exception as exc:  # obstore raises plain ValueError/GenericError for bad settings
            raise ConfigError(
                f"{self.location}: cannot set up the storage client: {type(exc).__name__}"
            ) from None

    def _open_s3(self, client: ClientConfig) -> S3Store:
        opts = self.options
        self._aws = BotocoreCredentials.available()
        region = opts.region or (self._aws.region if self._aws else None) or "us-east-1"
        bucket = self.location.bucket
        if opts.endpoint is not None:
            return S3Store(
                bucket,
                region=region,
                endpoint=opts.endpoint,
                client_options=client,
                retry_config=RETRIES,
                credential_provider=self._aws,
            )
        return S3Store(
            bucket, region=region, client_options=client, retry_config=RETRIES, credential_provider=self._aws
        )

    # --- listing ----------------------------------------------------------------------------------

    async def pages(self) -> AsyncGenerator[Sequence[CloudObject], None]:
        """The objects under the prefix, a chunk at a time, fetched as they are consumed."""
        if self._aws is not None:
            await self._aws.ensure()
        stream = obstore.list(self._store, self.location.prefix or None, chunk_size=self.options.list_chunk)
        try:
            async for chunk in stream:
                yield [self._object(meta) for meta in chunk]
        except Exception as exc:
            raise translate(exc, self.location, "listing") from None

    async def objects(self) -> AsyncIterator[CloudObject]:
        async for page in self.pages():
            for item in page:
                yield item

    def _object(self, meta: ObjectMeta) -> CloudObject:
        return CloudObject(
            url=self.location.url_for(meta["path"]),
            key=meta["path"],
            size=meta["size"],
            etag=meta["e_tag"],
            version=meta["version"],
            last_modified=meta["last_modified"],
        )

    async def head(self, key: str) -> CloudObject | None:
        """One object's size and version, as a listing would give them (a manifest's `url` row);
        None when there is no such object (or bucket: a HEAD's 404 has no body to tell them apart)."""
        if self._aws is not None:
            await self._aws.ensure()
        try:
            return self._object(await obstore.head_async(self._store, key))
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise translate(exc, self.location, "reading an object's size and version") from None

    # --- signing ----------------------------------------------------------------------------------

    async def sign_get(self, key: str, expires: dt.timedelta | None = None) -> str:
        """A presigned GET URL for one object. It is a secret: log `CloudObject.url`, never this.

        GCS needs a service-account key (or the IAM signBlob permission) and Azure an account key
        (or a user delegation key through a bearer token) to sign: without, a one-line ConfigError.
        """
        if self._aws is not None:
            await self._aws.ensure()
        try:
            url = await obstore.sign_async(self._store, "GET", key, expires or self.options.sign_expiry)
        except Exception as exc:
            raise translate(exc, self.location, "signing a URL") from None
        if self.location.scheme == "az" and azure_sas.needs_correction(url, key):
            return azure_sas.resign(url, azure_sas.account_of(url), self.location.bucket, key)
        return url
