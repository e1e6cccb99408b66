"""slng-bulk: push large batches of audio into the SLNG Batch transcription API.

What an embedding program imports; everything else is internal and may change::

    import pipeline

    settings = pipeline.load_settings(api_key="...", ledger="runs/ledger.db", language="fr")
    stats = await pipeline.submit(["recordings/"], settings)            # manifests, folders, "-"
    stats = await pipeline.submit_rows(["a.wav", {"path": "b.wav", "extra": {...}}], settings)
    if stats.exit_code() is not pipeline.ExitCode.OK: ...

Both return a `RunStats` (counters, failures, rates); errors that stop a run are `SlngBulkError`
subclasses. Secrets are masked in our own log lines; attach `RedactingFilter` to your handlers to
mask them in yours (the API key of a run, presigned URL signatures, bearer tokens).
The `slng-bulk` command is a thin layer over these calls.
"""

from typing import TYPE_CHECKING

from pipeline.config.settings import Settings, load_settings
from pipeline.errors import (
    AuthenticationError,
    ConfigError,
    ErrorClass,
    ExitCode,
    FileChangedError,
    LedgerWriteError,
    LockHeldError,
    SlngBulkError,
    TransferError,
)
from pipeline.logs import RedactingFilter
from pipeline.observe.stats import Failure, RunStats
from pipeline.sources.iterable_rows import RowInput
from pipeline.version import __version__

if TYPE_CHECKING:
    from pipeline.commands.submit import submit, submit_rows

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ErrorClass",
    "ExitCode",
    "Failure",
    "FileChangedError",
    "LedgerWriteError",
    "LockHeldError",
    "RedactingFilter",
    "RowInput",
    "RunStats",
    "Settings",
    "SlngBulkError",
    "TransferError",
    "__version__",
    "load_settings",
    "submit",
    "submit_rows",
]


def __getattr__(name: str) -> object:
    """`submit` and `submit_rows`, imported on first use: they bring in the HTTP stack, which the
    command line's dry run and --version never need (a fifth of a second at every start)."""
    if name in ("submit", "submit_rows"):
        from pipeline.commands import submit as commands

        return getattr(commands, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
