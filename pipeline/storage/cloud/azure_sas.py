"""A correction to obstore's Azure SAS for blob names that need percent-encoding.

obstore (0.x, object_store's signer) puts the blob's *encoded* path (`a%20b.wav`) into the
string-to-sign's canonical resource, where Azure's service-SAS rules (and Azurite, which follows
them) want the decoded name (`a b.wav`): every name with a space, `%`, `#`, braces or non-ASCII is
refused (403). Found by comparing Azurite's `--debug` string-to-sign with HMACs of both spellings.
With the account key at hand, the same SAS fields are signed again over the decoded name; without
one (a user delegation key through a bearer token), such a name cannot be signed correctly here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from pipeline.errors import ErrorClass, TransferError

KEY_VARIABLES: Final = ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_MASTER_KEY")
# The service SAS string-to-sign (version 2020-12-06 and later), around the canonical resource.
_BEFORE: Final = ("sp", "st", "se")
_AFTER: Final = ("si", "sip", "spr", "sv", "sr", "snapshot", "ses", "rscc", "rscd", "rsce", "rscl", "rsct")


def needs_correction(url: str, key: str) -> bool:
    """Whether obstore encoded the blob name in this URL (then its signature covers the wrong text)."""
    return not urlsplit(url).path.endswith("/" + key)


def resign(url: str, account: str, container: str, key: str) -> str:
    """`url` with its `sig` made over the decoded blob name `key`; the other fields kept as signed."""
    account_key = next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), None)
    if account_key is None:
        raise TransferError(
            f"az://{container}/{key}: a blob name that needs percent-encoding can only be signed with "
            "an account key (AZURE_STORAGE_ACCOUNT_KEY); obstore signs the encoded name",
            ErrorClass.PERMANENT,
        )
    parts = urlsplit(url)
    fields = dict(parse_qsl(parts.query, keep_blank_values=True))
    account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME") or account
    resource = f"/blob/{account}/{container}/{key}"
    text = "\n".join([*(fields.get(f, "") for f in _BEFORE), resource, *(fields.get(f, "") for f in _AFTER)])
    digest = hmac.new(base64.b64decode(account_key), text.encode("utf-8"), hashlib.sha256).digest()
    fields["sig"] = base64.b64encode(digest).decode("ascii")
    query = urlencode(fields, quote_via=quote, safe="")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def account_of(url: str) -> str:
    """The storage account a signed blob URL names: the host's first label, or (path-style, an
    emulator) the path's first segment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host.endswith(".blob.core.windows.net"):
        return host.split(".", 1)[0]
    return unquote(parts.path.lstrip("/").split("/", 1)[0])
