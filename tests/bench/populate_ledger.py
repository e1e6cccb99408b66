"""`python -m tests.bench.populate_ledger LEDGER SOURCE`: a finished ledger through the project's own API.

Every row of SOURCE is admitted (`Ledger.admit`, with the identity and job_id `submit` would use)
and moved to `presigned` then `created` (`mark_presigned`, `mark_created`), many at once so the ledger's group
commit batches them. No remote call: this is how the rerun benchmark gets 100,000 finished rows
without uploading 100,000 files. Run it with the same environment and working folder as the CLI
runs, so the settings (and so the identities) are the ones `submit` computes.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import anyio

from pipeline.config.settings import load_settings
from pipeline.ledger import open_ledger
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.readers import SourceOptions, iter_rows
from pipeline.sources.rows import FileSpec

IN_FLIGHT = 2048


async def populate(ledger_path: Path, source: str) -> int:
    settings = load_settings(ledger=ledger_path)
    rows = iter_rows([source], settings.job_defaults(), SourceOptions())
    run_id = "bench-populate"
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


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m tests.bench.populate_ledger LEDGER SOURCE")
    count = anyio.run(populate, Path(sys.argv[1]), sys.argv[2])
    print(f"populated {count}")


if __name__ == "__main__":
    main()
