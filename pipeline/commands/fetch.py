"""`fetch`: the transcripts of DONE jobs written under --out, after a status refresh."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.commands.connect import connect
from pipeline.config.settings import Settings
from pipeline.errors import ConfigError
from pipeline.follow.downloads import FetchReport, check_formats, fetch_transcripts
from pipeline.follow.refresh import StatusReport, refresh_statuses
from pipeline.ledger import ledger_missing


@dataclass
class FetchOutcome:
    statuses: StatusReport
    report: FetchReport
    beside_a_run: bool = False  # another run held the ledger: fetched beside it


async def fetch(settings: Settings) -> FetchOutcome:
    """Refresh statuses, then download what DONE jobs produced and is not on disk yet."""
    if settings.out is None:
        raise ConfigError("fetch needs an output folder (--out, SLNG_BULK_OUT, or out in the config file)")
    check_formats(settings.formats)
    if ledger_missing(settings.ledger):
        raise ConfigError(f"no ledger at {settings.ledger}")
    async with connect(settings, beside_a_run=True) as conn:
        statuses = await refresh_statuses(conn.ledger, conn.client, conn.policy)
        report = await fetch_transcripts(
            conn.ledger,
            conn.client,
            conn.session,
            settings.out,
            settings.formats,
            conn.policy,
            delete_after=settings.delete_after_fetch,
            concurrency=settings.concurrency,
        )
        beside = conn.beside_a_run
    return FetchOutcome(statuses, report, beside)
