"""Retry-After parsing, backoff bounds, transient-only retries, pool-wide slowdown, secret redaction."""

from __future__ import annotations

import email.utils
import time

import pytest

from pipeline.errors import ErrorClass, TransferError
from pipeline.redact import redact, register_secret, safe_url
from pipeline.transport.retry import (
    RETRY_AFTER_CAP_SECONDS,
    RetryPolicy,
    backoff_seconds,
    parse_retry_after,
    retry_transient,
)

pytestmark = pytest.mark.anyio


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    now = time.time()
    date = email.utils.formatdate(now + 10, usegmt=True)
    assert 8.0 <= (parse_retry_after(date, now=now) or 0) <= 10.0
    assert parse_retry_after("99999") == RETRY_AFTER_CAP_SECONDS
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after(email.utils.formatdate(now - 100, usegmt=True), now=now) == 0.0


def test_backoff_never_below_retry_after_and_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    for attempt in range(1, 20):
        assert 0 <= backoff_seconds(policy, attempt, None) <= 4.0
        assert backoff_seconds(policy, attempt, 7.0) >= 7.0


async def test_only_transient_errors_are_retried() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransferError("503", ErrorClass.TRANSIENT, status=503)
        return "ok"

    policy = RetryPolicy(retries=5, base_delay=0.001, max_delay=0.002)
    assert await retry_transient(policy, flaky) == "ok" and calls == 3

    calls = 0

    async def bad_request() -> str:
        nonlocal calls
        calls += 1
        raise TransferError("400", ErrorClass.PERMANENT, status=400)

    with pytest.raises(TransferError, match="400"):
        await retry_transient(policy, bad_request)
    assert calls == 1


async def test_retries_are_bounded() -> None:
    calls = 0

    async def always_down() -> None:
        nonlocal calls
        calls += 1
        raise TransferError("503", ErrorClass.TRANSIENT, status=503)

    with pytest.raises(TransferError):
        await retry_transient(RetryPolicy(retries=3, base_delay=0.001, max_delay=0.001), always_down)
    assert calls == 4


def test_redaction_of_signatures_bearer_and_registered_key() -> None:
    url = "https://b.s3.amazonaws.com/k.wav?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=deadbeef"
    cleaned = redact(f"PUT {url} failed")
    assert "deadbeef" not in cleaned and "AKIA" not in cleaned and "X-Amz-Algorithm=AWS4" in cleaned
    assert redact("Authorization: Bearer sk-abc123") == "Authorization: Bearer REDACTED"
    register_secret("sk-very-secret-key")
    assert "sk-very-secret-key" not in redact("key=sk-very-secret-key here")
    assert safe_url(url) == "https://b.s3.amazonaws.com/k.wav"
