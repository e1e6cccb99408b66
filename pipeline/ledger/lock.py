"""One run per SQLite ledger, enforced by an OS file lock beside it."""

from __future__ import annotations

from pathlib import Path

import filelock

from pipeline.errors import ConfigError, LockHeldError


def try_run_lock(ledger_path: Path) -> filelock.BaseFileLock | None:
    """The ledger's lock if no run holds it, else None (a reader beside a run decides what to do).

    A lock file that cannot be made (read-only or missing folder, full disk) is a configuration
    error: the ledger's path is unusable, and nothing has been sent yet.
    """
    lock = filelock.FileLock(f"{ledger_path}.lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return None
    except OSError as exc:
        raise ConfigError(
            f"cannot lock the ledger {ledger_path}: cannot create {ledger_path}.lock: {exc.strerror or exc}"
        ) from None
    return lock


def acquire_run_lock(ledger_path: Path) -> filelock.BaseFileLock:
    """Take the ledger's lock or say who holds it. A dead holder releases the lock by dying."""
    lock = try_run_lock(ledger_path)
    if lock is None:
        raise LockHeldError(
            f"another slng-bulk run is using the ledger {ledger_path} (lock file {ledger_path}.lock); "
            "wait for it to finish"
        )
    return lock
