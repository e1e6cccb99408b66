"""Work on files the ledger already knows (retry-failed, a fleet's claims): read where they live on
this host, under their recorded identity, and only while they are still the file that was listed."""

from __future__ import annotations

import errno
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.flow.journey import WorkItem
from pipeline.ledger import FileRecord
from pipeline.sources.pathmap import PathMap
from pipeline.sources.remote import RemoteObject, is_cloud_url, is_url, remote_spec
from pipeline.sources.rows import FileSpec, JobSettings, Rejection


def spec_at(record: FileRecord, path: Path) -> FileSpec:
    """The row of a file the ledger knows, read from `path`: where it lives on this host, which
    `--path-map` may make another path than the recorded one (the file's identity either way)."""
    return FileSpec(
        source=record.source,
        line=record.line,
        path=path,
        size=record.size,
        mtime_ns=record.mtime_ns,
        job_id=None,
        settings=JobSettings.model_validate_json(record.settings_json),
        relative_path=record.relative_path,
    )


def remote_spec_of(record: FileRecord) -> FileSpec:
    """The row of a URL the ledger knows (`path` is its URL without query). A cloud object is
    signed again when its job is created; a plain https URL's query was never stored, so such a
    row can only be sent again from its manifest (`remote.fetch_url` is the bare URL here)."""
    url = record.path
    cloud = is_cloud_url(url)
    remote = RemoteObject(url, version=record.object_version, fetch_url=None if cloud else url)
    return remote_spec(
        record.source,
        record.line,
        remote,
        size=record.size,
        mtime_ns=record.mtime_ns,
        job_id=None,
        settings=JobSettings.model_validate_json(record.settings_json),
        relative_path=record.relative_path,
    )


def local_file(
    record: FileRecord, path_map: PathMap, *, since: str, host: str | None = None
) -> FileSpec | str:
    """The one check of a file the ledger knows: its row where it lives on this host, if it is
    still the file that was listed (same size and mtime); else why not, in one line. `since`:
    when it was listed ("submitted", "enqueued"); `host`: named in the line, on a shared ledger.
    A URL row lives in its store, not on this host: its recorded identity is taken as it is."""
    if is_url(record.path):
        return remote_spec_of(record)
    local = path_map.local(record.path)
    at = f" at {local}" if local != record.path else ""
    on_host = f" on host {host}" if host is not None else ""
    try:
        st = Path(local).stat()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            hint = ""
        elif at or host is not None:
            hint = "; check --path-map"
        else:
            hint = " (moved? --path-map FROM=TO reads files where they are now)"
        return f"file is gone: {exc.strerror}{at}{on_host}{hint}"
    if st.st_size != record.size or st.st_mtime_ns != record.mtime_ns:
        return f"file changed since it was {since}{at}{on_host}"
    return spec_at(record, Path(local))


def work_from_ledger(records: Iterable[FileRecord], path_map: PathMap) -> Iterator[WorkItem | Rejection]:
    """Work on files the ledger knows, under their recorded file key and job id, read where
    `path_map` says they live here. A file that vanished or changed is rejected, under its recorded
    path (so `report --path` finds the rejection beside the file)."""
    for record in records:
        found = local_file(record, path_map, since="submitted")
        if isinstance(found, str):
            yield Rejection(record.source, record.line, record.path, found)
        else:
            yield WorkItem(found, record.file_key, record.job_id)
