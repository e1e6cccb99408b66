"""slng-bulk: push large batches of audio into the SLNG Batch transcription API.

What an embedding program imports; every other module is internal and may change::

    import pipeline

    settings = pipeline.load_settings(api_key="...", ledger="runs/ledger.db", language="fr")
    stats = await pipeline.submit(["recordings/"], settings)            # manifests, folders, "-"
    stats = await pipeline.submit_rows(["a.wav", {"path": "b.wav", "extra": {...}}], settings)
    if stats.exit_code() is not pipeline.ExitCode.OK: ...

Every command of the command line is an awaitable here: `submit`, `submit_rows`, `retry_failed`,
`enqueue`, `work`, `status`, `wait`, `fetch`, `reconcile`, and `export`/`history` for `report`.
The runs take `on_result` (each file's `FileResult`), `stop` (a `StopHandle`) and `session` (an
aiohttp session of yours). Settings are built from the arguments alone unless you pass
`environment=True` to `load_settings`. Errors that stop a command are `SlngBulkError` subclasses.
Secrets are masked in our own log lines; attach `RedactingFilter` to your handlers to mask them in
yours (the API key of a run, presigned URL signatures, bearer tokens).
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from pipeline.config.settings import Settings, load_settings
from pipeline.errors import (
    AuthenticationError,
    ConfigError,
    ErrorClass,
    ExitCode,
    FileChangedError,
    LedgerWriteError,
    LockHeldError,
    OutageError,
    SlngBulkError,
    TransferError,
)
from pipeline.logs import RedactingFilter
from pipeline.observe.stats import Failure, RunStats
from pipeline.sources.iterable_rows import RowInput
from pipeline.version import __version__

if _TYPE_CHECKING:
    from pipeline.commands.fetch import FetchOutcome, fetch
    from pipeline.commands.fleet import EnqueueReport, enqueue, work
    from pipeline.commands.reconcile import ReconcileOutcome, reconcile
    from pipeline.commands.report import History, export, history
    from pipeline.commands.retry_failed import resubmit_failed as retry_failed
    from pipeline.commands.status import StatusOutcome, status
    from pipeline.commands.submit import submit, submit_rows
    from pipeline.commands.wait import WaitOutcome, wait
    from pipeline.flow.context import FileResult, Outcome, StopHandle

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "EnqueueReport",
    "ErrorClass",
    "ExitCode",
    "Failure",
    "FetchOutcome",
    "FileChangedError",
    "FileResult",
    "History",
    "LedgerWriteError",
    "LockHeldError",
    "OutageError",
    "Outcome",
    "ReconcileOutcome",
    "RedactingFilter",
    "RowInput",
    "RunStats",
    "Settings",
    "SlngBulkError",
    "StatusOutcome",
    "StopHandle",
    "TransferError",
    "WaitOutcome",
    "__version__",
    "enqueue",
    "export",
    "fetch",
    "history",
    "load_settings",
    "reconcile",
    "retry_failed",
    "status",
    "submit",
    "submit_rows",
    "wait",
    "work",
]

# Imported on first use: they bring in the HTTP stack, which the command line's dry run and
# --version never need (a fifth of a second at every start). name -> (module, attribute)
_LAZY = {
    "submit": ("submit", "submit"),
    "submit_rows": ("submit", "submit_rows"),
    "retry_failed": ("retry_failed", "resubmit_failed"),
    "enqueue": ("fleet", "enqueue"),
    "work": ("fleet", "work"),
    "EnqueueReport": ("fleet", "EnqueueReport"),
    "status": ("status", "status"),
    "StatusOutcome": ("status", "StatusOutcome"),
    "wait": ("wait", "wait"),
    "WaitOutcome": ("wait", "WaitOutcome"),
    "fetch": ("fetch", "fetch"),
    "FetchOutcome": ("fetch", "FetchOutcome"),
    "reconcile": ("reconcile", "reconcile"),
    "ReconcileOutcome": ("reconcile", "ReconcileOutcome"),
    "export": ("report", "export"),
    "history": ("report", "history"),
    "History": ("report", "History"),
}
_LAZY_FLOW = {"FileResult", "Outcome", "StopHandle"}


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f"pipeline.commands.{module}"), attribute)
    if name in _LAZY_FLOW:
        return getattr(importlib.import_module("pipeline.flow.context"), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
