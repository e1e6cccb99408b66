"""SigV4 query signing and verification, both done by botocore.

Presigned URLs come from a botocore S3 client (`generate_presigned_url`), exactly as a real
service would mint them, and incoming requests are checked by re-signing them with botocore's
`S3SigV4QueryAuth` at the request's own `X-Amz-Date`. No canonicalisation is written here, so the
sandbox cannot agree with a client on a wrong canonical request.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

import botocore.session
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from pipeline.sandbox.config import S3Credentials

AUTH_PARAMS: Final = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
MAX_EXPIRES: Final = 604800
# Headers a client may add without signing them (as AWS and LocalStack allow).
UNSIGNED_AMZ_ALLOWED: Final = frozenset({"x-amz-content-sha256"})

_session_lock = threading.Lock()
_session: Any = None


def _shared_session() -> Any:
    """One botocore session per process: loading the S3 model is the slow part of start-up."""
    global _session
    with _session_lock:
        if _session is None:
            _session = botocore.session.Session()
        return _session


def make_s3_client(endpoint_url: str, creds: S3Credentials) -> Any:
    """A path-style SigV4 botocore S3 client for `endpoint_url`."""
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 2, "mode": "standard"},
    )
    session = _shared_session()
    with _session_lock:  # botocore sessions are not safe to create clients from concurrently
        return session.create_client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            region_name=creds.region,
            config=config,
        )


class Presigner:
    """Mints presigned PUT/GET URLs for one bucket on one endpoint."""

    def __init__(self, endpoint_url: str, bucket: str, creds: S3Credentials) -> None:
        self.bucket = bucket
        self._client = make_s3_client(endpoint_url, creds)

    def presign_put(self, key: str, content_type: str, expires_in: int) -> str:
        params = {"Bucket": self.bucket, "Key": key, "ContentType": content_type}
        return str(self._client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in))

    def presign_get(self, key: str, expires_in: int) -> str:
        params = {"Bucket": self.bucket, "Key": key}
        return str(self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in))


class _AtDateQueryAuth(S3SigV4QueryAuth):  # type: ignore[misc]
    """botocore's presign signer, pinned to the X-Amz-Date the client signed at."""

    def __init__(self, credentials: Credentials, region: str, expires: int, timestamp: str) -> None:
        super().__init__(credentials, "s3", region, expires=expires)
        self._timestamp = timestamp

    def _modify_request_before_signing(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self._timestamp
        super()._modify_request_before_signing(request)


@dataclass(frozen=True)
class SignatureProblem:
    """Why a request is refused, in S3's own terms."""

    status: int
    code: str
    message: str


def _problem(status: int, code: str, message: str) -> SignatureProblem:
    return SignatureProblem(status, code, message)


def verify_presigned(
    method: str,
    host: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    creds: S3Credentials,
    now: float,
) -> SignatureProblem | None:
    """Check a presigned request the way S3 does; None when it is valid.

    Order follows LocalStack's validator: parameters, unsigned x-amz headers, signature, expiry.
    """
    pairs = parse_qsl(query_string, keep_blank_values=True)
    query = dict(pairs)
    present = [p for p in AUTH_PARAMS if p in query]
    if not present:
        return _problem(403, "AccessDenied", "Access Denied")
    if len(present) != len(AUTH_PARAMS):
        return _problem(
            400,
            "AuthorizationQueryParametersError",
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
        )
    if "authorization" in {k.lower() for k in headers}:
        return _problem(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
            "string parameter or the Authorization header should be specified",
        )
    scope = query["X-Amz-Credential"].split("/")
    if (
        len(scope) != 5
        or scope[3:] != ["s3", "aws4_request"]
        or query["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256"
    ):
        return _problem(
            400,
            "AuthorizationQueryParametersError",
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
        )
    if scope[2] != creds.region:
        return _problem(
            400,
            "AuthorizationQueryParametersError",
            f"Error parsing the X-Amz-Credential parameter; the region '{scope[2]}' is wrong; "
            f"expecting '{creds.region}'",
        )
    try:
        expires = int(query["X-Amz-Expires"])
        signed_at = _amz_date_epoch(query["X-Amz-Date"])
    except ValueError:
        return _problem(400, "AuthorizationQueryParametersError", "X-Amz-Date or X-Amz-Expires is malformed.")
    if not 0 < expires <= MAX_EXPIRES:
        return _problem(
            400,
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        )
    if scope[0] != creds.access_key:
        return _problem(
            403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
        )
    signed = [h for h in query["X-Amz-SignedHeaders"].lower().split(";") if h]
    lower_headers = {k.lower(): v for k, v in headers.items()}
    unsigned = sorted(
        h
        for h in lower_headers
        if h.startswith("x-amz-") and h not in signed and h not in UNSIGNED_AMZ_ALLOWED
    )
    if unsigned:
        return _problem(
            403, "AccessDenied", "There were headers present in the request which were not signed"
        )
    if "host" not in signed or any(h not in lower_headers for h in signed):
        return _problem(403, "SignatureDoesNotMatch", _MISMATCH)
    expected = _botocore_signature(
        method, host, raw_path, pairs, lower_headers, signed, creds, expires, query
    )
    if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
        return _problem(403, "SignatureDoesNotMatch", _MISMATCH)
    if now > signed_at + expires:
        return _problem(403, "AccessDenied", "Request has expired")
    return None


_MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


def _amz_date_epoch(value: str) -> float:
    return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def _botocore_signature(
    method: str,
    host: str,
    raw_path: str,
    pairs: list[tuple[str, str]],
    headers: Mapping[str, str],
    signed: list[str],
    creds: S3Credentials,
    expires: int,
    query: Mapping[str, str],
) -> str:
    """Rebuild the request as the client signed it and let botocore sign it again."""
    operation_params = {k: v for k, v in pairs if k not in AUTH_PARAMS}
    request = AWSRequest(
        method=method.upper(),
        url=f"http://{host}{raw_path}",
        headers={h: headers[h] for h in signed if h != "host"},
        params=operation_params,
    )
    credentials = Credentials(creds.access_key, creds.secret_key)
    signer = _AtDateQueryAuth(credentials, creds.region, expires, query["X-Amz-Date"])
    signer.add_auth(request)
    resigned = dict(parse_qsl(str(request.url).split("?", 1)[1], keep_blank_values=True))
    return resigned.get("X-Amz-Signature", "")
