"""Deterministic identities: the same file with the same recognition settings always maps to the
same job.

The job_id is derived, not random, so that a crash between "create sent" and "create recorded"
can be resolved by asking the server for that exact id instead of creating a second, billed job.

A file's identity is its bytes as listed (local: absolute path, size, mtime; URL: the URL without
query, the object's version and size) plus the settings that change the recognition
(`JobSettings.recognition_hash`: transcription_config, extra keys, model_code). Tracking, metadata
and output_config are not part of it: a new tag on a finished archive costs nothing.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import ValidationError

from pipeline.sources.rows import FileSpec, JobSettings

JOB_ID_PREFIX = "sb"
# Leads every key's material, so no key of this scheme can equal one of the first (which hashed
# all the settings and had no such mark); ledgers of the first are re-keyed on open.
IDENTITY_SCHEME = "identity2"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _key(*parts: object) -> str:
    material = "\0".join(str(part) for part in (IDENTITY_SCHEME, *parts))
    return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()


def url_key(url: str, version: str | None, size: int, recognition_hash: str) -> str:
    """The identity of an object named by URL (no query), at this version (S3 version id or ETag)."""
    return _key("url", url, version or "", size, recognition_hash)


def local_key(path_text: str, size: int, mtime_ns: int, recognition_hash: str) -> str:
    """The identity of a local file at this absolute path, size and modification time."""
    return _key("file", path_text, size, mtime_ns, recognition_hash)


def file_key(spec: FileSpec) -> str:
    """The identity of a row's file (see the module's docstring)."""
    remote = spec.remote
    recognition = spec.settings.recognition_hash()
    if remote is not None:
        return url_key(remote.url, remote.version, spec.size, recognition)
    return local_key(spec.path_text, spec.size, spec.mtime_ns, recognition)


def stored_file_key(
    path: str, size: int, mtime_ns: int, object_version: str | None, settings_json: str
) -> str | None:
    """A ledger row's identity recomputed from its stored columns (the ledger migration that
    re-keys older ledgers); None when its stored settings no longer validate (the row keeps its
    old key, and is a new file to a rerun)."""
    try:
        settings = JobSettings.model_validate_json(settings_json)
    except ValidationError:
        return None
    if _URL.match(path):
        return url_key(path, object_version, size, settings.recognition_hash())
    return local_key(path, size, mtime_ns, settings.recognition_hash())


def derive_job_id(key: str, generation: int = 0, given: str | None = None) -> str:
    """The job_id for a file: the manifest's own on the first submission, else derived from its key.

    A resubmission (--force, retry-failed) is a new generation and so a new, still deterministic, id.
    """
    if given and generation == 0:
        return given
    digest = hashlib.sha256(f"{key}\0{generation}".encode()).hexdigest()[:32]
    return f"{JOB_ID_PREFIX}{digest}"
