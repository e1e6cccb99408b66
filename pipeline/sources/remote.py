"""Audio named by URL instead of a local path: `s3://`, `gs://`, `az://` objects and plain `https://`.

A URL row never passes through this host: the service downloads the audio itself (`input_url`).
Its identity is the object, not a path on disk: the URL without its query, plus the object's
version (S3 version id, else its ETag) and size, as the listing or a HEAD reported them. A plain
`https://` URL is taken as given, with no HEAD (a presigned GET URL refuses HEAD, and a server may
not answer one cheaply): its identity is the URL without query alone, its size unknown (0).

Here only what needs no network: recognising a URL cell, checking its spelling, and the row it
becomes. Cloud rows are completed (HEAD) and listed by `pipeline.flow.cloud_rows`, which may reach
the storage layer.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

from pipeline.api.models import AUDIO_EXTENSIONS, is_valid_job_id
from pipeline.sources.rows import FileSpec, JobSettings, Rejection, Row, quote

CLOUD_SCHEMES: Final = ("s3", "gs", "az")
WEB_SCHEMES: Final = ("https", "http")
URL_SCHEMES: Final = (*CLOUD_SCHEMES, *WEB_SCHEMES)
_SCHEME_PREFIXES: Final = tuple(f"{scheme}://" for scheme in URL_SCHEMES)


def is_url(text: str) -> bool:
    """Whether a cell or a source names a URL rather than a local path (case-insensitive scheme)."""
    return text[:8].lower().startswith(_SCHEME_PREFIXES)


def is_cloud_url(text: str) -> bool:
    return text[:5].lower().startswith(tuple(f"{s}://" for s in CLOUD_SCHEMES))


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """Where a URL row's audio is. `fetch_url` is what the service is given for a plain https URL
    (its query may be a signature: never logged nor stored); a cloud object is signed late instead."""

    url: str  # identity: scheme://bucket/key or https://host/path, never a query
    version: str | None = None  # S3 version id or ETag; None for https, or a cloud row not yet HEADed
    fetch_url: str | None = None  # https only: the URL as given
    resolved: bool = True  # False: a cloud row whose size and version a HEAD has still to tell

    @property
    def is_cloud(self) -> bool:
        return self.fetch_url is None


def remote_spec(
    source: str,
    line: int | None,
    remote: RemoteObject,
    *,
    size: int,
    mtime_ns: int,
    job_id: str | None,
    settings: JobSettings,
    relative_path: str,
) -> FileSpec:
    return FileSpec(source, line, remote.url, size, mtime_ns, job_id, settings, relative_path, remote=remote)


def _audio_name(path: str) -> str | None:
    """Why the URL's last segment is no audio file name, or None when it is one."""
    extension = posixpath.splitext(unquote(path))[1][1:].lower()
    if extension in AUDIO_EXTENSIONS:
        return None
    supported = ", ".join(sorted(AUDIO_EXTENSIONS))
    what = f"unsupported extension {quote('.' + extension)}" if extension else "no file extension"
    return f"{what} in the URL (supported: {supported})"


def url_row(
    source: str,
    line: int | None,
    cell: str,
    job_id: str | None,
    settings: JobSettings | str,
    *,
    allow_http: bool = False,
) -> Row:
    """One manifest, stdin or library row given by URL; `settings` is a str when they were rejected."""
    text = cell.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    identity = urlunsplit((scheme, parts.netloc, parts.path, "", ""))
    if scheme not in URL_SCHEMES or not parts.netloc or parts.path in ("", "/"):
        return Rejection(source, line, identity or None, "not an object URL (s3://, gs://, az://, https://)")
    if "@" in parts.netloc:
        return Rejection(source, line, identity, "a URL with credentials in it is refused (user@host)")
    if scheme == "http" and not allow_http:
        return Rejection(source, line, identity, "the service only fetches https:// URLs")
    if scheme in CLOUD_SCHEMES and (parts.query or parts.fragment):
        return Rejection(source, line, identity, f"an {scheme}:// URL takes no query (it is signed late)")
    if job_id is not None and not is_valid_job_id(job_id):
        return Rejection(
            source, line, identity, f"invalid job_id {quote(job_id)}: use 1-128 letters and digits"
        )
    if isinstance(settings, str):
        return Rejection(source, line, identity, settings)
    if (why := _audio_name(parts.path)) is not None:
        return Rejection(source, line, identity, why)
    relative = f"{parts.netloc}/{parts.path.lstrip('/')}"
    if scheme in CLOUD_SCHEMES:
        remote = RemoteObject(identity, resolved=False)
    else:
        remote = RemoteObject(identity, fetch_url=text.split("#", 1)[0])  # sent byte for byte
    return remote_spec(
        source, line, remote, size=0, mtime_ns=0, job_id=job_id, settings=settings, relative_path=relative
    )
