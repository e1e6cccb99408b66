"""One run per SQLite ledger, enforced by an OS file lock beside it."""

from __future__ import annotations

from pathlib import Path

import filelock

from pipeline.errors import LockHeldError


def acquire_run_lock(ledger_path: Path) -> filelock.BaseFileLock:
    """Take the ledger's lock or say who holds it. A dead holder releases the lock by dying."""
    lock = filelock.FileLock(f"{ledger_path}.lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockHeldError(
            f"another slng-bulk run is using the ledger {ledger_path} (lock file {ledger_path}.lock); "
            "wait for it to finish"
        ) from None
    return lock
