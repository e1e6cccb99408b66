"""A ledger written before URL rows existed (SQLite and PostgreSQL) is brought up to date on open:
its local files read back as they were, and URL rows go in beside them with their object version.
The old ledger is made in a subprocess by the code of the commit before URL rows, taken from the
repository's own history (`git archive`), so the test runs wherever the checkout has its history."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.api.models import TranscriptionConfig
from pipeline.ledger import open_ledger
from pipeline.ledger.pg_schema import MIGRATIONS as PG_MIGRATIONS
from pipeline.ledger.schema import MIGRATIONS
from pipeline.sources.identity import file_key
from pipeline.sources.remote import RemoteObject, remote_spec
from pipeline.sources.rows import FileSpec, JobSettings
from tests.support.history import old_checkout, run_old_code

pytestmark = pytest.mark.anyio
OLD_COMMIT = "f0418d2"  # main just before URL rows (the object_version column) were merged
WRITE_OLD = """
import anyio, sys
from pathlib import Path
from pipeline.ledger import open_ledger
from tests.ledger.conftest import make_spec
from pipeline.sources.identity import file_key
async def main():
    spec = make_spec(Path(sys.argv[2]))
    async with open_ledger(sys.argv[1]) as ledger:
        await ledger.admit(spec, file_key(spec), "oldlocal1", "r0")
anyio.run(main)
"""


def write_with_old_code(target: str, folder: Path) -> None:
    old = old_checkout(folder, OLD_COMMIT)
    schema = (old / "pipeline" / "ledger" / "schema.py").read_text()
    assert "object_version" not in schema, "OLD_COMMIT must predate URL rows"
    run_old_code(old, WRITE_OLD, target, str(folder))


def url_spec() -> FileSpec:
    settings = JobSettings(transcription_config=TranscriptionConfig(language="en"))
    remote = RemoteObject("s3://bucket/calls/a.wav", version='"etag-1"')
    return remote_spec(
        "s3://bucket/calls/",
        None,
        remote,
        size=10,
        mtime_ns=5,
        job_id=None,
        settings=settings,
        relative_path="a.wav",
    )


async def test_an_older_ledger_takes_url_rows_after_its_upgrade(ledger_target: str, tmp_path: Path) -> None:
    write_with_old_code(ledger_target, tmp_path)
    spec = url_spec()
    async with open_ledger(ledger_target) as ledger:
        admitted = await ledger.admit(spec, file_key(spec), "newurl1", "r1")
        assert admitted.record is not None
        await ledger.flush()
        by_job = {record.job_id: record for record in ledger.records()}
    old = by_job["oldlocal1"]
    assert old.path == str(tmp_path / "a.wav") and old.object_version is None and old.mtime_ns > 0
    new = by_job["newurl1"]
    assert (new.path, new.object_version, new.size) == ("s3://bucket/calls/a.wav", '"etag-1"', 10)
    assert len(MIGRATIONS) == 6 and len(PG_MIGRATIONS) == 5
