"""`retry-failed`: files whose job FAILED on the server, resubmitted as new jobs (history kept)."""

from __future__ import annotations

from typing import Unpack

from pipeline.commands.connect import Connection
from pipeline.commands.run import RunHooks, run_pool
from pipeline.config.settings import Settings
from pipeline.flow.context import RunContext
from pipeline.flow.journey import WorkItem
from pipeline.flow.ledger_work import work_from_ledger
from pipeline.flow.pool import Pool
from pipeline.flow.work_source import ListedWork
from pipeline.follow.common import RETRY_REASON
from pipeline.follow.refresh import refresh_statuses
from pipeline.ledger import FileState, HistoryKind
from pipeline.observe.stats import RunStats
from pipeline.sources.identity import derive_job_id
from pipeline.sources.pathmap import PathMap


async def resubmit_failed(settings: Settings, **hooks: Unpack[RunHooks]) -> RunStats:
    """`retry-failed`: every file whose job FAILED on the server becomes a new job (history kept).

    Statuses are refreshed first, so jobs that failed since the last look are included. A file that
    changed or vanished since it was submitted is rejected and keeps its failed job. Rerunnable: a
    file renewed by an interrupted earlier run (new job_id, job not created yet) is taken again.
    Files are read where `--path-map` says they live on this host; they keep their recorded
    identity (path, file key, job ids), as with `work`. `hooks` are `submit`'s.
    """
    path_map = PathMap.parse(settings.path_map)

    async def renew_and_run(conn: Connection, run: RunContext) -> RunStats:
        ledger, signals = conn.ledger, run.signals
        with signals.stoppable():
            await refresh_statuses(ledger, conn.client, conn.policy)
        interrupted = await ledger.reads.renewed_not_created(HistoryKind.RETRY_FAILED)
        work = list(work_from_ledger(interrupted, path_map))
        created = ledger.reads.records([FileState.CREATED.value])
        for record in [r async for r in created if r.job_status == "FAILED"]:
            if signals.caught is not None:
                break  # no new job for a file the stopping run would not send
            item = next(work_from_ledger([record], path_map))
            if isinstance(item, WorkItem):
                reason = f"{RETRY_REASON}: {record.job_error or 'no message'}"
                new_job_id = derive_job_id(record.id_seed, record.generation + 1)
                renewed = await ledger.renew(record, new_job_id, HistoryKind.RETRY_FAILED, reason)
                item = WorkItem(item.spec, renewed.file_key, renewed.job_id)
            work.append(item)
        return await Pool(run).run_source(ListedWork(work))

    return await run_pool(settings, hooks, renew_and_run)
