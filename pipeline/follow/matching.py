"""`reconcile`: rebuild the ledger from the server's job list, matching jobs to files by job_id.

Only jobs the server lists are marked created, so a `submit` after it creates nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.api.client import SlngClient
from pipeline.api.models import BatchJob
from pipeline.follow.common import job_message, status_changed
from pipeline.follow.job_pages import job_pages
from pipeline.ledger import FileRecord, FileState, Ledger
from pipeline.sources.identity import derive_job_id
from pipeline.transport.retry import RetryPolicy

LATER_GENERATIONS = 4  # reconcile also recognises this many resubmissions (retry-failed, --force)


@dataclass
class ReconcileReport:
    matched: int = 0  # ledger files whose job the server has, newly marked created
    already: int = 0  # ledger files already marked created, status refreshed
    adopted: int = 0  # files whose later job (retry-failed, --force) was found and adopted
    historical: int = 0  # server jobs the ledger knows as replaced (job history)
    unknown_on_server: list[str] = field(default_factory=list)  # jobs the ledger does not know
    missing_on_server: list[str] = field(default_factory=list)  # created in the ledger, not listed


async def reconcile(ledger: Ledger, client: SlngClient, policy: RetryPolicy) -> ReconcileReport:
    """Page every job on the server and match it to the ledger by job_id; mark proven ones created.

    A file's job_id is derived from its identity, so a ledger rebuilt from the same sources knows the
    ids to look for, including those of a few resubmissions. Only jobs the server lists are marked.
    """
    report = ReconcileReport()
    records = [record async for record in ledger.reads.records()]
    by_job = {r.job_id: r for r in records}
    later: dict[str, tuple[FileRecord, int]] = {}
    for record in records:
        for generation in range(record.generation + 1, record.generation + 1 + LATER_GENERATIONS):
            later[derive_job_id(record.id_seed, generation)] = (record, generation)
    history = await ledger.reads.history_job_ids()
    adopt: dict[int, tuple[FileRecord, BatchJob, int]] = {}
    seen: set[str] = set()
    async for items in job_pages(client, policy):
        updates: list[tuple[FileRecord, str, str | None]] = []
        for job in items:
            if job.job_id in seen:
                continue  # pages shifted under us: seen on the page before
            seen.add(job.job_id)
            mine = by_job.get(job.job_id)
            if mine is None:
                hit = later.get(job.job_id)
                if hit is not None:
                    candidate, generation = hit
                    best = adopt.get(candidate.id)
                    if best is None or best[2] < generation:
                        adopt[candidate.id] = (candidate, job, generation)
                elif job.job_id in history:
                    report.historical += 1
                else:
                    report.unknown_on_server.append(job.job_id)
                continue
            if mine.state is FileState.CREATED:
                report.already += 1
            else:
                await ledger.mark_created(mine)
                report.matched += 1
            if status_changed(mine, job.status, job_message(job)):
                updates.append((mine, job.status, job_message(job)))
        await ledger.set_job_statuses(updates)
    for record, job, generation in adopt.values():
        adopted = await ledger.adopt_job(
            record, job.job_id, generation, "reconcile: a later job of this file is on the server"
        )
        await ledger.set_job_statuses([(adopted, job.status, job_message(job))])  # the job it has now
        report.adopted += 1
    report.missing_on_server = [
        r.job_id
        for r in records
        if r.state is FileState.CREATED and r.job_id not in seen and r.id not in adopt
    ]
    return report
