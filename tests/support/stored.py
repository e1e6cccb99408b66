"""Ledger reads the tests need and the pipeline does not: whole records by key, one job's status."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.ledger import FileRecord, Ledger


def records_by_key(ledger: Ledger, file_keys: Sequence[str]) -> dict[str, FileRecord]:
    """The whole records of these files, as the ledger has them now."""
    wanted = set(file_keys)
    return {record.file_key: record for record in ledger.records() if record.file_key in wanted}


async def set_status(ledger: Ledger, record: FileRecord, status: str, error: str | None) -> FileRecord:
    """One job's server status, through the batch write the pipeline uses."""
    [updated] = await ledger.set_job_statuses([(record, status, error)])
    return updated
