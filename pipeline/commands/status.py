"""`status`: the server status of every unfinished job brought into the ledger, and the fleet's
progress by host when the ledger is shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from pipeline.commands.connect import connect
from pipeline.config.settings import Settings
from pipeline.errors import ConfigError
from pipeline.follow.refresh import StatusReport, refresh_statuses
from pipeline.ledger import Ledger, ledger_missing

if TYPE_CHECKING:  # leases needs the postgres extra, which a run's own ledger does without
    from pipeline.ledger.leases import HostProgress


@dataclass
class StatusOutcome:
    report: StatusReport
    fleet: list[HostProgress] | None  # progress by host on a shared ledger; None on a run's own
    beside_a_run: bool = False  # another run held the ledger: refreshed beside it

    @property
    def has_problems(self) -> bool:
        """A job FAILED on the server, is unknown to it, or could not be asked about."""
        return bool(self.report.failed_jobs or self.report.missing_jobs or self.report.errors)


async def status(settings: Settings) -> StatusOutcome:
    """Refresh every job that is not finished (one GET each, or pages of the job list)."""
    if ledger_missing(settings.ledger):
        raise ConfigError(f"no ledger at {settings.ledger}")
    async with connect(settings, beside_a_run=True) as conn:
        report = await refresh_statuses(conn.ledger, conn.client, conn.policy)
        return StatusOutcome(report, await fleet_of(conn.ledger), conn.beside_a_run)


async def fleet_of(ledger: Ledger) -> list[HostProgress] | None:
    """Progress by host, for a ledger that a fleet shares; None for a run's own ledger."""
    shared = ledger.shared()
    if shared is None:
        return None
    from pipeline.ledger.leases import fleet_progress

    return await anyio.to_thread.run_sync(fleet_progress, shared)  # a query: off the event loop
