"""The SQLite ledger's write-ahead log stays near the size of the data over a long run."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from pipeline.ledger import FileRecord, SqliteLedger
from pipeline.sources.identity import derive_job_id, file_key
from tests.ledger.conftest import make_spec

pytestmark = pytest.mark.anyio

KIB = 1024


async def journey(ledger: SqliteLedger, record: FileRecord) -> None:
    """The ledger writes of one file's submit, as the journey makes them."""
    record = await ledger.count_attempt(record)
    record = await ledger.mark_presigned(record, f"inputs/{record.job_id}/a.wav", {"tracking": {"run": 1}})
    record = await ledger.mark_uploaded(record, "0" * 32)
    record = await ledger.mark_creating(record, record.attempts)
    await ledger.mark_created(record)


@pytest.mark.slow
async def test_the_wal_stays_near_the_data_size_over_thousands_of_writes(tmp_path: Path) -> None:
    specs = [make_spec(tmp_path, f"f{i}.wav") for i in range(2000)]
    keys = [file_key(spec) for spec in specs]
    path, wal = tmp_path / "l.db", tmp_path / "l.db-wal"
    peak = 0
    async with SqliteLedger(path) as ledger:
        for start in range(0, len(specs), 50):
            # The producer's skip lookups run beside the writes, as in a run.
            await anyio.to_thread.run_sync(ledger.glance, keys[start : start + 256])
            async with anyio.create_task_group() as group:
                for spec, key in zip(specs[start : start + 50], keys[start : start + 50], strict=True):
                    record = (await ledger.admit(spec, key, derive_job_id(key), "r")).record
                    assert record is not None
                    group.start_soon(journey, ledger, record)
            peak = max(peak, wal.stat().st_size if wal.exists() else 0)
            # Near the data: a floor for small ledgers, else about half the data size.
            bound = max(512 * KIB, path.stat().st_size // 2)
            assert peak <= bound, f"after {start + 50} files: WAL {peak // KIB} KiB > {bound // KIB} KiB"
        await ledger.flush()
        assert ledger.count_by_state() == {"created": len(specs)}
