"""`status` and `fetch` may write beside a run (SQLite): what they learnt of a job the run has since
replaced (--force) must not land on the file's new job."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ledger import HistoryKind, SqliteLedger
from pipeline.sources.identity import derive_job_id, file_key
from tests.ledger.conftest import make_spec
from tests.support.stored import records_by_key

pytestmark = pytest.mark.anyio


async def test_a_stale_records_server_view_does_not_land_on_a_new_job(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    key = file_key(spec)
    async with SqliteLedger(tmp_path / "l.db") as ledger:
        admitted = await ledger.admit(spec, key, derive_job_id(key), "r1")
        assert admitted.record is not None
        seen_by_status = await ledger.mark_created(admitted.record)
        await ledger.renew(seen_by_status, derive_job_id(key, 1), HistoryKind.FORCED, "resubmitted (--force)")
        await ledger.set_job_statuses([(seen_by_status, "FAILED", "old job's failure")])
        await ledger.set_fetched(seen_by_status, "txt", ["/out/a.wav.txt"])
        await ledger.set_server_deleted(seen_by_status)
        current = records_by_key(ledger, [key])[key]
    assert current.job_id == derive_job_id(key, 1)
    assert (current.job_status, current.job_error, current.transcripts) == (None, None, None)
