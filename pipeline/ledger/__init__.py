"""The results ledger: what happened to every file, durable across crashes.

`open_ledger(target)` picks the backend from the target: a plain path or `sqlite:///path` is the
embedded SQLite ledger; `postgresql://...` is reserved for the shared PostgreSQL ledger.
Every backend implements `Ledger` (pipeline.ledger.base), with the same states and semantics.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.ledger import records
from pipeline.ledger.base import Ledger
from pipeline.ledger.lock import acquire_run_lock, try_run_lock
from pipeline.ledger.records import *  # noqa: F403 (records.__all__: the records are the package's)
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
    require_postgres_driver()
    from pipeline.ledger.postgres import PostgresLedger

    if max_outage is None:
        return PostgresLedger(str(target), host=host)
    return PostgresLedger(str(target), host=host, max_outage=max_outage)


def require_postgres_driver() -> None:
    """ConfigError naming the extra to install when the PostgreSQL driver cannot be imported."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise ConfigError(
            "a postgresql:// ledger needs the PostgreSQL driver: pip install 'slng-bulk[postgres]'"
        ) from None


def require_shared_ledger(target: str | Path, command: str) -> None:
    """`enqueue` and `work` coordinate hosts through one PostgreSQL ledger: refuse anything else
    (a SQLite file, or no driver installed) in one line, before any work."""
    if sqlite_path(target) is not None:
        raise ConfigError(
            f"{command} needs a shared PostgreSQL ledger: set --ledger postgresql://USER@HOST/DB"
            f" (or SLNG_BULK_LEDGER); {target} is a SQLite file (for one host, use submit)"
        )
    require_postgres_driver()


def ledger_missing(target: str | Path) -> bool:
    """A SQLite ledger file that does not exist (a shared ledger is checked when it is opened)."""
    path = sqlite_path(target)
    return path is not None and not path.exists()


__all__ = [
    "Ledger",
    "SqliteLedger",
    "acquire_run_lock",
    "ledger_missing",
    "open_ledger",
    "require_postgres_driver",
    "require_shared_ledger",
    "sqlite_path",
    "try_run_lock",
]
__all__ += records.__all__
