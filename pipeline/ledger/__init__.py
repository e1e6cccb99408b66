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
    Glance,
    HistoryKind,
    Rejected,
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


def open_ledger(target: str | Path) -> Ledger:
    """The ledger `target` names, not yet opened (`async with open_ledger(t) as ledger:`)."""
    path = sqlite_path(target)
    if path is not None:
        return SqliteLedger(path)
    raise ConfigError(
        "ledger postgresql://...: the PostgreSQL backend is not installed in this slng-bulk; "
        "use a SQLite ledger path"
    )


__all__ = [
    "CHANGED",
    "RESUMABLE_STATES",
    "Admission",
    "FileRecord",
    "FileState",
    "Glance",
    "HistoryKind",
    "Ledger",
    "Rejected",
    "SqliteLedger",
    "acquire_run_lock",
    "open_ledger",
    "sqlite_path",
]
