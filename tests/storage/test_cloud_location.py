"""Parsing cloud prefix URLs and turning obstore's failures into one secret-free line."""

from __future__ import annotations

import datetime as dt

import pytest
from obstore.exceptions import GenericError, PermissionDeniedError

from pipeline.errors import ConfigError, ExitCode, TransferError
from pipeline.storage.cloud import CloudBucket, CloudLocation, CloudOptions, parse_cloud_url
from pipeline.storage.cloud.failures import translate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://archive/calls/2026/", CloudLocation("s3", "archive", "calls/2026/")),
        ("gs://archive", CloudLocation("gs", "archive", "")),
        ("az://recordings/team a/", CloudLocation("az", "recordings", "team a/")),
        ("S3://archive/x", CloudLocation("s3", "archive", "x")),
    ],
)
def test_cloud_urls_parse(text: str, expected: CloudLocation) -> None:
    assert parse_cloud_url(text) == expected
    assert expected.url_for("k/a.wav") == f"{expected.scheme}://{expected.bucket}/k/a.wav"


@pytest.mark.parametrize(
    "text",
    ["https://archive/x", "s3:///x", "gs://archive/x?sig=1", "az://acct@container/x", "/local/path", ""],
)
def test_bad_cloud_urls_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_cloud_url(text)
    assert info.value.exit_code is ExitCode.CONFIG
    assert "\n" not in str(info.value) and "sig=1" not in str(info.value)


def test_a_refusal_becomes_one_line_with_status_and_code_only() -> None:
    location = CloudLocation("s3", "archive", "calls/")
    raw = PermissionDeniedError(
        "Error performing GET http://h/archive?list-type=2&X-Amz-Signature=SECRETSIG - Server returned "
        "non-2xx status code: 403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code>"
        "<AWSAccessKeyId>AKIASECRET</AWSAccessKeyId></Error>\n\nDebug source: ..."
    )
    error = translate(raw, location, "listing")
    assert isinstance(error, ConfigError)
    text = str(error)
    assert text.startswith("s3://archive/calls/: cloud storage refused the credentials while listing")
    assert "(HTTP 403 SignatureDoesNotMatch)" in text
    assert "\n" not in text and "SECRET" not in text


def test_an_unclassified_failure_is_transient() -> None:
    error = translate(
        GenericError("Server returned non-2xx status code: 503"), CloudLocation("gs", "b", ""), "x"
    )
    assert isinstance(error, TransferError) and error.is_transient and error.status == 503


def test_plain_http_endpoints_need_allow_http() -> None:
    with pytest.raises(ConfigError, match="allow-http"):
        CloudBucket(parse_cloud_url("s3://b/"), CloudOptions(endpoint="http://127.0.0.1:9"))
    with pytest.raises(ConfigError, match="7 days"):
        CloudBucket(parse_cloud_url("s3://b/"), CloudOptions(sign_expiry=dt.timedelta(days=8)))
