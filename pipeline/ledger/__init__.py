"""The results ledger: what happened to every file, durable across crashes.

`open_ledger(target)` picks the backend from the target: a plain path or `sqlite:///path` is the
embedded SQLite ledger; `postgresql://...` is reserved for the shared PostgreSQL ledger.
Every backend implements `Ledger` (pipeline.ledger.base), with the same states and semantics.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.ledger.base import Ledger
from pipeline.ledger.lock import acquire_run_lock
from pipeline.ledger.records import (
    CHANGED,
    RESUMABLE_STATES,
    Admission,
    FileRecord,
    FileState,
    FileStory,
    Glance,
    HistoryKind,
    Rejected,
    RejectionRecord,
    ReplacedJob,
    StepTimes,
)
from pipeline.ledger.sqlite import SqliteLedger

SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql:", "postgres:")


def sqlite_path(target: str | Path) -> Path | None:
    """The SQLite file `target` names (a plain path or sqlite:///PATH), None for another scheme.

    As in SQLAlchemy, sqlite:///l.db is relative and sqlite:////var/l.db absolute.
    """
    text = str(target)
    if text.startswith(POSTGRES_SCHEMES):
        return None
    if text.startswith(SQLITE_SCHEME):
        return Path(text[len(SQLITE_SCHEME) :])
    return Path(target)


def open_ledger(target: str | Path, *, host: str | None = None, max_outage: float | None = None) -> Ledger:
    """The ledger `target` names, not yet opened (`async with open_ledger(t) as ledger:`).

    `host` names this machine in a shared ledger's fleet view (default: its hostname);
    `max_outage`, how long a shared ledger's lost server is waited for (default: --max-outage's).
    """
    path = sqlite_path(target)
    if path is not None:
        return SqliteLedger(path)
    try:
        from pipeline.ledger.postgres import PostgresLedger
    except ImportError:
        raise ConfigError(
            "a postgresql:// ledger needs the PostgreSQL driver: pip install 'slng-bulk[postgres]'"
        ) from None
    if max_outage is None:
        return PostgresLedger(str(target), host=host)
    return PostgresLedger(str(target), host=host, max_outage=max_outage)


def ledger_missing(target: str | Path) -> bool:
    """A SQLite ledger file that does not exist (a shared ledger is checked when it is opened)."""
    path = sqlite_path(target)
    return path is not None and not path.exists()


__all__ = [
    "CHANGED",
    "RESUMABLE_STATES",
    "Admission",
    "FileRecord",
    "FileState",
    "FileStory",
    "Glance",
    "HistoryKind",
    "Ledger",
    "Rejected",
    "RejectionRecord",
    "ReplacedJob",
    "SqliteLedger",
    "StepTimes",
    "acquire_run_lock",
    "ledger_missing",
    "open_ledger",
    "sqlite_path",
]
