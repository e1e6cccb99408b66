"""Remove secrets from any text before it is logged, stored or raised.

Presigned URLs carry credentials in their query string; the API key travels in a header. Both
must never reach logs, the ledger, reports or exception text, so every such sink passes through
`redact`. The API key is registered for the run with `secret_scope` (or, in a one-run process such
as the command line, `register_secret`). The registry is a context variable, not a module global:
two runs in one process (a library user's tasks) each mask their own keys, and a run's keys are
forgotten when it ends.

What is masked:
- the values of `X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token` (and the older
  `Signature`, `AWSAccessKeyId`, and `Credential` of an AWS Authorization header), whether written
  `name=value` (a query string, raw or percent-encoded as `name%3Dvalue`) or `"name": "value"`
  (JSON, a Python dict);
- the contents of the S3 error-body elements that echo signing material (`<SignatureProvided>`,
  `<StringToSign>`, `<CanonicalRequest>`, `<AWSAccessKeyId>` and their `...Bytes` forms);
- anything after `Bearer `;
- every registered secret, also in its JSON-escaped, repr-escaped and percent-encoded spellings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

_NAMES = (
    r"X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|AWSAccessKeyId|Signature|Credential"
    r"|x-amz-security-token|sig"  # sig: an Azure SAS (X-Goog-Signature is caught as Signature)
)
_SIGNED_QUERY = re.compile(
    rf"(?i)(?<![A-Za-z0-9])({_NAMES})"  # the parameter name
    r"(=|%3D|[\"']?\s*:\s*[\"']?)"  # name=value, name%3Dvalue, "name": "value", 'name': 'value'
    r"[^&\s\"'<>,;\\]*"  # the value
)
_S3_ECHO = re.compile(
    r"(?i)<(SignatureProvided|StringToSign(?:Bytes)?|CanonicalRequest(?:Bytes)?|AWSAccessKeyId)>"
    r"[^<]*(</)"
)
_BEARER = re.compile(r"(?i)(Bearer\s+)[^\s\"',]+")
MIN_SECRET_LENGTH = 4
# Every spelling of every secret of this context, longest first (no partial leftovers).
_secrets: ContextVar[tuple[str, ...]] = ContextVar("slng_bulk_secrets", default=())


def _spellings(secret: str) -> set[str]:
    """The secret as it may appear in text: literal, JSON- or repr-escaped, percent-encoded."""
    forms = {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _with(secrets: tuple[str, ...], secret: str | None) -> tuple[str, ...]:
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        return secrets
    return tuple(sorted(set(secrets) | _spellings(secret), key=len, reverse=True))


def register_secret(secret: str | None) -> None:
    """Mask a literal secret (the API key) wherever it appears, in this context and the tasks and
    threads it starts from now on."""
    _secrets.set(_with(_secrets.get(), secret))


@contextmanager
def secret_scope(*secrets: str | None) -> Iterator[None]:
    """Mask these secrets inside the block (a run); the registry is as before once it ends."""
    registered = _secrets.get()
    for secret in secrets:
        registered = _with(registered, secret)
    token = _secrets.set(registered)
    try:
        yield
    finally:
        _secrets.reset(token)


def redact(text: str) -> str:
    text = _SIGNED_QUERY.sub(lambda m: f"{m.group(1)}{m.group(2)}REDACTED", text)
    text = _S3_ECHO.sub(lambda m: f"<{m.group(1)}>REDACTED{m.group(2)}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}REDACTED", text)
    for secret in _secrets.get():
        if secret in text:
            text = text.replace(secret, "REDACTED")
    return text


def safe_url(url: str) -> str:
    """A URL fit for logs: scheme, host and path only; user info, query (the signature) and
    fragment are dropped."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        port = parts.port
    except ValueError:  # not parseable as a URL: keep what precedes any query, minus user info
        head = url.partition("?")[0].partition("#")[0]
        return redact(head.rpartition("@")[2] if "@" in head else head)
    netloc = f"{host}:{port}" if port is not None else host
    return redact(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
