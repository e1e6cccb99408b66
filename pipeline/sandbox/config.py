"""Configuration of a sandbox instance.

One immutable object describes a sandbox so that the in-process fixture, the thread runner and the
CLI (`serve`) all start exactly the same thing from the same settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from pipeline.api.models import MAX_FILE_BYTES
from pipeline.sandbox.faults import FaultPlan

DEFAULT_API_KEY: Final = "sk-sandbox-test"
DEFAULT_S3_ACCESS_KEY: Final = "sandbox"
DEFAULT_S3_SECRET_KEY: Final = "sandbox-secret"
DEFAULT_BUCKET: Final = "slng-sandbox-batch"
DOWNLOAD_EXPIRES_IN: Final = 3600


class S3Credentials(BaseModel):
    """What a test needs to presign its own URLs against the sandbox S3 with botocore."""

    model_config = ConfigDict(frozen=True)

    access_key: str
    secret_key: str
    region: str


class SandboxConfig(BaseModel):
    """Settings of one sandbox. `s3_endpoint` set = external mode (no local S3 server is started)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    host: str = "127.0.0.1"
    api_port: int = Field(default=0, ge=0, le=65535)
    s3_port: int = Field(default=0, ge=0, le=65535)
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    job_step_seconds: float = Field(default=2.0, ge=0)
    data_dir: Path | None = None
    faults: FaultPlan = Field(default_factory=FaultPlan)
    presign_expires_in: int = Field(default=1800, ge=1, le=604800)
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    # Not in the list: lets tests prove the 413 path without pushing a real gigabyte.
    max_upload_bytes: int = Field(default=MAX_FILE_BYTES, ge=1)

    @property
    def external(self) -> bool:
        return self.s3_endpoint is not None

    @property
    def bucket(self) -> str:
        return self.s3_bucket or DEFAULT_BUCKET

    @property
    def s3_credentials(self) -> S3Credentials:
        return S3Credentials(
            access_key=self.s3_access_key or DEFAULT_S3_ACCESS_KEY,
            secret_key=self.s3_secret_key or DEFAULT_S3_SECRET_KEY,
            region=self.s3_region,
        )

    @property
    def url_host(self) -> str:
        """Host to put in URLs: a wildcard bind address is not something a client can connect to."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
