"""Work on files the ledger already knows (retry-failed, a fleet's claims): read where they live on
this host, under their recorded identity, and only while they are still the file that was listed."""

from __future__ import annotations

import errno
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.flow.journey import WorkItem
from pipeline.ledger import FileRecord
from pipeline.sources.pathmap import PathMap
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


def work_from_ledger(records: Iterable[FileRecord], path_map: PathMap) -> Iterator[WorkItem | Rejection]:
    """Work on files the ledger knows, under their recorded file key and job id, read where
    `path_map` says they live here. A file that vanished or changed is rejected, under its recorded
    path (so `report --path` finds the rejection beside the file)."""
    for record in records:
        local = path_map.local(record.path)
        elsewhere = f" at {local}" if local != record.path else ""
        try:
            st = Path(local).stat()
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                hint = ""
            elif elsewhere:
                hint = "; check --path-map"
            else:
                hint = " (moved? --path-map FROM=TO reads files where they are now)"
            why = f"file is gone: {exc.strerror}{elsewhere}{hint}"
            yield Rejection(record.source, record.line, record.path, why)
            continue
        if st.st_size != record.size or st.st_mtime_ns != record.mtime_ns:
            why = f"file changed since it was submitted{elsewhere}"
            yield Rejection(record.source, record.line, record.path, why)
            continue
        yield WorkItem(spec_at(record, Path(local)), record.file_key, record.job_id)
