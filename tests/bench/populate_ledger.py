"""`python -m tests.bench.populate_ledger [--via-api] LEDGER SOURCE`: a finished ledger, no remote call.

Every row of SOURCE gets the identity and job_id `submit` would use and ends `created`. This is how
the rerun benchmark gets a million finished rows without uploading a million files. Run it with the
same environment and working folder as the CLI runs, so the settings (and so the identities) are
the ones `submit` computes.

Two ways, the same rows (tests/sources/test_populate_ledger.py holds them equal):
- bulk (default): one executemany per batch into the schema `pipeline.ledger.schema` creates, with
  the columns `admit`, `mark_presigned` and `mark_created` would have written;
- `--via-api`: through the project's own `Ledger` (`admit`, `mark_presigned`, `mark_created`), many
  at once so the group commit batches them; about 8k rows/s, too slow for 1M rows.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import anyio

from pipeline.config.settings import load_settings
from pipeline.ledger import FileState, open_ledger
from pipeline.ledger.schema import IDENTITY_COLUMNS, connect, identity_columns, migrate, transaction
from pipeline.redact import redact
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.readers import SourceOptions, iter_rows
from pipeline.sources.rows import FileSpec

IN_FLIGHT = 2048
BULK_BATCH = 20_000  # rows per transaction of the bulk fill
RUN_ID = "bench-populate"


async def populate(ledger_path: Path, source: str) -> int:
    settings = load_settings(ledger=ledger_path)
    rows = iter_rows([source], settings.job_defaults(), SourceOptions())
    run_id = RUN_ID
    done = 0

    async with open_ledger(ledger_path) as ledger:
        await ledger.start_run(run_id)

        async def finish(spec: FileSpec) -> None:
            nonlocal done
            key = file_key(spec)
            job_id = derive_job_id(key, 0, spec.job_id)
            admission = await ledger.admit(spec, key, job_id, run_id)
            record = admission.record
            if record is None:
                raise RuntimeError(f"{spec.path}: {admission.refusal}")
            record = await ledger.mark_presigned(record, f"inputs/{job_id}/{spec.path.name}", {})
            await ledger.mark_created(record)
            done += 1

        while batch := list(itertools.islice(rows, IN_FLIGHT)):
            async with anyio.create_task_group() as group:
                for row in batch:
                    if not isinstance(row, FileSpec):
                        raise RuntimeError(f"unexpected rejection: {row.message()}")
                    group.start_soon(finish, row)
        await ledger.finish_run(run_id, {"populated": done})
    return done


_INSERT = (
    f"INSERT INTO files({IDENTITY_COLUMNS}, state, job_id, seen_run, s3_key, echo_json, admitted_at,"
    " presigned_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _bulk_row(spec: FileSpec, now: float) -> tuple[object, ...]:
    """The columns of one created file, as admit + mark_presigned({}) + mark_created leave them."""
    key = file_key(spec)
    job_id = derive_job_id(key, 0, spec.job_id)
    return (
        *identity_columns(spec, key),
        FileState.CREATED.value,
        job_id,
        RUN_ID,
        f"inputs/{job_id}/{spec.path.name}",
        json.dumps({}, sort_keys=True),
        now,
        now,
        now,
        now,
    )


def bulk_fill(ledger_path: Path, source: str) -> int:
    """The same rows as `populate`, written with executemany, BULK_BATCH rows per transaction."""
    settings = load_settings(ledger=ledger_path)
    rows = iter_rows([source], settings.job_defaults(), SourceOptions())
    done = 0
    conn = connect(ledger_path)
    try:
        migrate(conn)
        with transaction(conn):
            conn.execute("INSERT INTO runs(run_id, started_at) VALUES (?, ?)", (RUN_ID, time.time()))
        while batch := list(itertools.islice(rows, BULK_BATCH)):
            now = time.time()
            values = []
            for row in batch:
                if not isinstance(row, FileSpec):
                    raise RuntimeError(f"unexpected rejection: {row.message()}")
                values.append(_bulk_row(row, now))
            with transaction(conn):
                conn.executemany(_INSERT, values)
            done += len(values)
        summary = redact(json.dumps({"populated": done}, sort_keys=True))
        with transaction(conn):
            conn.execute(
                "UPDATE runs SET finished_at = ?, summary_json = ? WHERE run_id = ?",
                (time.time(), summary, RUN_ID),
            )
    finally:
        conn.close()
    return done


def main() -> None:
    args = sys.argv[1:]
    via_api = args[:1] == ["--via-api"]
    if via_api:
        args = args[1:]
    if len(args) != 2:
        raise SystemExit("usage: python -m tests.bench.populate_ledger [--via-api] LEDGER SOURCE")
    ledger, source = Path(args[0]), args[1]
    count = anyio.run(populate, ledger, source) if via_api else bulk_fill(ledger, source)
    print(f"populated {count}")


if __name__ == "__main__":
    main()
