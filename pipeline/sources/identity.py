"""Deterministic identities: the same file with the same settings always maps to the same job.

The job_id is derived, not random, so that a crash between "create sent" and "create recorded"
can be resolved by asking the server for that exact id instead of creating a second, billed job.
"""

from __future__ import annotations

import hashlib

from pipeline.sources.rows import FileSpec

JOB_ID_PREFIX = "sb"


def file_key(spec: FileSpec) -> str:
    """Identity of (file content as listed, settings): absolute path, size, mtime and settings hash;
    for a URL row the URL without query, its version (S3 version id or ETag) and size instead."""
    remote = spec.remote
    if remote is not None:
        material = f"url\0{remote.url}\0{remote.version or ''}\0{spec.size}\0{spec.settings.settings_hash()}"
        return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()
    material = f"{spec.path_text}\0{spec.size}\0{spec.mtime_ns}\0{spec.settings.settings_hash()}"
    return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()


def derive_job_id(key: str, generation: int = 0, given: str | None = None) -> str:
    """The job_id for a file: the manifest's own on the first submission, else derived from its key.

    A resubmission (--force, retry-failed) is a new generation and so a new, still deterministic, id.
    """
    if given and generation == 0:
        return given
    digest = hashlib.sha256(f"{key}\0{generation}".encode()).hexdigest()[:32]
    return f"{JOB_ID_PREFIX}{digest}"
