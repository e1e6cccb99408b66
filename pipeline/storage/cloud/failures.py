"""obstore's errors turned into the project's: one line, the location, the HTTP status and the
service's error code, never obstore's own text (it can carry request URLs and bodies)."""

from __future__ import annotations

import re
from typing import Final

from obstore.exceptions import (
    BaseError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)

from pipeline.errors import ConfigError, ErrorClass, SlngBulkError, TransferError
from pipeline.storage.cloud.location import CloudLocation

_STATUS: Final = re.compile(r"status code: (\d{3})")
_CODE: Final = re.compile(r"<Code>(\w{1,64})</Code>|\"reason\":\s*\"(\w{1,64})\"")
_REFUSED: Final = frozenset({401, 403})
_CREDENTIAL_HINTS: Final = ("credential", "token", "metadata", "oauth", "signblob")

CHAIN: Final = {
    "s3": "AWS credentials (environment, ~/.aws profile, SSO, web identity, instance role)",
    "gs": "Google credentials (GOOGLE_APPLICATION_CREDENTIALS / GOOGLE_SERVICE_ACCOUNT key file, "
    "gcloud application-default credentials, or the metadata server)",
    "az": "Azure credentials (AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or a SAS, "
    "a service principal, workload or managed identity, or the Azure CLI)",
}


def _status_and_code(text: str) -> tuple[int | None, str | None]:
    status = _STATUS.search(text)
    code = _CODE.search(text)
    return (
        int(status.group(1)) if status else None,
        (code.group(1) or code.group(2)) if code else None,
    )


def is_not_found(exc: BaseException) -> bool:
    """A 404 (obstore raises NotFoundError for some stores, a generic error for a HEAD's bare 404)."""
    return isinstance(exc, NotFoundError) or _status_and_code(str(exc))[0] == 404


def translate(exc: BaseException, location: CloudLocation, doing: str) -> SlngBulkError:
    """The project's error for an obstore failure while `doing` something at `location`."""
    if isinstance(exc, SlngBulkError):
        return exc
    text = str(exc)
    status, code = _status_and_code(text)
    detail = " ".join(p for p in (f"HTTP {status}" if status else None, code) if p)
    suffix = f" ({detail})" if detail else ""
    if isinstance(exc, UnauthenticatedError | PermissionDeniedError) or status in _REFUSED:
        return ConfigError(
            f"{location}: cloud storage refused the credentials while {doing}{suffix}; "
            f"check the {CHAIN[location.scheme]}"
        )
    if isinstance(exc, NotFoundError) or status == 404:
        return ConfigError(f"{location}: no such bucket or container while {doing}{suffix}")
    lowered = text.lower()
    if status is None and any(h in lowered for h in _CREDENTIAL_HINTS):
        return ConfigError(
            f"{location}: could not get credentials while {doing}; set up {CHAIN[location.scheme]}"
        )
    if isinstance(exc, BaseError):
        return TransferError(
            f"{location}: cloud storage failed while {doing}{suffix}", ErrorClass.TRANSIENT, status=status
        )
    return TransferError(f"{location}: {doing} failed: {type(exc).__name__}", ErrorClass.TRANSIENT)
