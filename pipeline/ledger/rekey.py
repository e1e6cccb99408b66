"""Re-keying an older ledger to the current identity scheme (`pipeline.sources.identity`).

Ledgers written before the identity left tracking, metadata and output_config out keyed each file by
all its settings. On open, each row's key is recomputed from its stored columns, so a rerun of the
same sources finds its files done. The old key is kept in `job_seed`: later job ids of the file
(`--force`, retry-failed, reconcile's matching) go on being derived from it, so the jobs it already
had on the server are still recognised as its own.

Two old rows may now share one identity (the same file submitted twice with different tags): the
one whose job exists (state created), else the newest, takes the new key; the others keep their old
key, and stay in the reports as they were. Rows are read a batch at a time (memory stays bounded).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from pipeline.sources.identity import stored_file_key

REKEY_BATCH: Final = 1000
# The rows to re-key, created ones first, then the rest, each newest first: `{p}` is the backend's
# parameter mark; the parameters are (created?, before id, batch size).
SELECT_BATCH: Final = (
    "SELECT id, path, size, mtime_ns, object_version, settings_json FROM files"
    " WHERE (CASE WHEN state = 'created' THEN 1 ELSE 0 END) = {p} AND id < {p} ORDER BY id DESC LIMIT {p}"
)
# Taken only if no row has the new key yet; the old key moves to job_seed (SET reads old values).
UPDATE_KEY: Final = (
    "UPDATE files SET job_seed = file_key, file_key = {p} WHERE id = {p}"
    " AND NOT EXISTS (SELECT 1 FROM files AS other WHERE other.file_key = {p})"
)
NO_ID_ABOVE: Final = 1 << 62


def new_keys(rows: Iterable[Sequence[Any]]) -> list[tuple[str, int, str]]:
    """UPDATE_KEY's parameters for rows of SELECT_BATCH: (new key, id, new key)."""
    updates = []
    for row_id, path, size, mtime_ns, object_version, settings_json in rows:
        key = stored_file_key(path, size, mtime_ns, object_version, settings_json)
        if key is not None:
            updates.append((key, row_id, key))
    return updates
