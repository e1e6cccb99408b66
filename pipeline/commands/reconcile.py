"""`reconcile`: rebuild the ledger from the server's job list, after first admitting the sources' files."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from pipeline.commands.connect import Connection, connect
from pipeline.config.settings import Settings
from pipeline.flow.feed import PRODUCER_BATCH
from pipeline.flow.inputs import open_sources
from pipeline.follow.matching import ReconcileReport
from pipeline.follow.matching import reconcile as match_server_jobs
from pipeline.logs import log
from pipeline.sources.identity import derive_job_id, file_key
from pipeline.sources.rows import FileSpec, Row


@dataclass
class SourceAdmission:
    """What `admit_sources` did with the rows of the given sources."""

    added: int = 0  # new to the ledger
    known: int = 0  # the ledger had them already
    refused: int = 0  # e.g. a manifest job_id that another file owns
    rejected: int = 0  # bad rows (missing file, bad value, ...)


@dataclass
class ReconcileOutcome:
    admitted: SourceAdmission | None  # None without sources
    report: ReconcileReport


async def reconcile(sources: Sequence[str], settings: Settings) -> ReconcileOutcome:
    """Match the server's jobs to the ledger's files by job_id; with `sources`, admit their files
    first (a lost or new ledger), so a later submit duplicates nothing. Give the same settings as
    the original submit: they are part of each file's job_id."""
    async with connect(settings) as conn:
        admitted = await admit_sources(conn, sources) if sources else None
        report = await match_server_jobs(conn.ledger, conn.client, conn.policy)
    return ReconcileOutcome(admitted, report)


async def admit_sources(conn: Connection, sources: Sequence[str]) -> SourceAdmission:
    """Record every valid file of `sources` in the ledger (state pending) without any remote call.

    Used by reconcile: with the files' deterministic job_ids in the ledger, the server's job list
    can be matched to them. Use the same settings as the original submit (they are part of the id).
    """
    rows = open_sources(sources, conn.settings)
    run_id = f"reconcile-{uuid.uuid4().hex[:8]}"
    result = SourceAdmission()

    def next_batch() -> list[tuple[Row, str, bool]]:
        batch = list(itertools.islice(rows, PRODUCER_BATCH))
        keys = [file_key(row) if isinstance(row, FileSpec) else "" for row in batch]
        known = conn.ledger.glance([k for k in keys if k])
        return [(row, key, key in known) for row, key in zip(batch, keys, strict=True)]

    while batch := await anyio.to_thread.run_sync(next_batch):
        for row, key, known in batch:
            if not isinstance(row, FileSpec):
                result.rejected += 1
                log.warning("rejected: %s", row.message())
                continue
            admission = await conn.ledger.admit(row, key, derive_job_id(key, 0, row.job_id), run_id)
            if admission.record is None:
                result.refused += 1
                log.warning("not admitted: %s: %s", row.path, admission.refusal)
            elif known:
                result.known += 1
            else:
                result.added += 1
    await conn.ledger.flush()  # admissions are applied, not committed: reconcile reads them next
    return result
