"""A presigned URL, sent exactly as the API gave it.

The signature covers the path and query as the signer spelled them. Given a string, aiohttp parses
it with yarl, which normalises it (`%27` becomes `'`, `%3B` becomes `;`, `%2F` in the query becomes
`/`): a server that checks the signature over the request as sent (GCS, CloudFront, the sandbox)
refuses it, and one that decodes first may store the object under another key. So every request
to a URL the API handed out goes through `exact_url`, which aiohttp sends untouched.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from yarl import URL

from pipeline.errors import ErrorClass, TransferError
from pipeline.redact import safe_url

# What cannot go on an HTTP request line at all: space, control characters, anything not ASCII.
_UNSENDABLE = re.compile(r"[^\x21-\x7e]+")


def exact_url(url: str) -> URL:
    """`url` as a yarl URL marked already encoded, so aiohttp sends its path and query byte for byte.

    Only characters that cannot be sent as they are (space, controls, non-ASCII) are
    percent-encoded (UTF-8), as a browser would; every `%XX` and every other byte stays as given.
    """
    sendable = _UNSENDABLE.sub(lambda found: quote(found.group(0), safe=""), url)
    try:
        parsed = URL(sendable, encoded=True)
        parsed.port  # noqa: B018  (yarl checks the port only when asked)
    except ValueError as exc:
        raise TransferError(f"unusable URL {safe_url(url)}: {exc}", ErrorClass.PERMANENT) from None
    return parsed
