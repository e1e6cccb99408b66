"""Remove secrets from any text before it is logged, stored or raised.

Presigned URLs carry credentials in their query string; the API key travels in a header. Both
must never reach logs, the ledger, reports or exception text, so every such sink passes through
`redact`. The API key is registered once at start-up with `register_secret`.
"""

from __future__ import annotations

import re
import threading

_SIGNED_QUERY = re.compile(
    r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)|Signature|AWSAccessKeyId|x-amz-security-token)"
    r"=[^&\s\"'<>]*"
)
_BEARER = re.compile(r"(?i)(Bearer\s+)[^\s\"',]+")
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Remember a literal secret (the API key) so that it is masked wherever it appears."""
    if secret and len(secret) >= 4:
        with _lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    text = _SIGNED_QUERY.sub(lambda m: f"{m.group(1)}=REDACTED", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}REDACTED", text)
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, "REDACTED")
    return text


def safe_url(url: str) -> str:
    """A URL fit for logs: scheme, host and path only; the query (the signature) is dropped."""
    head, _, _query = url.partition("?")
    return head
