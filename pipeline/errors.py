"""One exception hierarchy and one error taxonomy for the whole pipeline.

Every failure a file can meet is classified once, here, so that the runner's retry, re-presign and
abort decisions read the class instead of re-inspecting status codes in many places.
"""

from __future__ import annotations

import enum
import errno
from typing import Any, Final

from pipeline.redact import redact


class ErrorClass(enum.StrEnum):
    """What the pipeline should do about an error."""

    TRANSIENT = "transient"  # retry with backoff: connection errors, timeouts, 429, 5xx, SlowDown
    PERMANENT = "permanent"  # do not retry: validation, too large, bad file, a FAILED job
    AUTH = "auth"  # stop the whole run: the API refused our key
    EXPIRED = "expired"  # the presigned URL is no longer valid: presign again, then PUT again
    CONFLICT = "conflict"  # the job already exists (409): confirm with GET
    NOT_FOUND = "not_found"  # 404 on a job lookup


class ExitCode(enum.IntEnum):
    """Documented process exit codes. `meaning` is the one text of each: the README's table and the
    epilog of `slng-bulk --help` are checked against it (tests/cli/test_exit_code_table.py)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    REJECTED = 3
    AUTH = 4
    LOCKED = 5
    INTERRUPTED = 6
    NOTHING_TO_DO = 7
    CONFIG = 8
    LEDGER = 9
    INTERNAL = 10
    OUTAGE = 11

    @property
    def meaning(self) -> str:
        return _EXIT_CODE_MEANINGS[self]


_EXIT_CODE_MEANINGS: Final = {
    ExitCode.OK: "success: every file is done (now or in an earlier run)",
    ExitCode.FAILED: (
        "some files or jobs failed, in this run or an earlier one and not resolved since"
        " (and possibly some rows were rejected)"
    ),
    ExitCode.USAGE: "usage: unknown command or flag, bad flag value, missing or conflicting argument",
    ExitCode.REJECTED: "some rows were rejected as bad input; everything else succeeded",
    ExitCode.AUTH: "the API refused the key",
    ExitCode.LOCKED: "another run holds the ledger's lock",
    ExitCode.INTERRUPTED: "stopped early: SIGINT/SIGTERM, --max-duration or --wait-timeout",
    ExitCode.NOTHING_TO_DO: "nothing to do (only with --error-on-nothing)",
    ExitCode.CONFIG: "configuration: missing key or source, bad setting or config file, unusable ledger",
    ExitCode.LEDGER: "the ledger could not be written during the run (disk full, I/O error)",
    ExitCode.INTERNAL: "internal error (a bug): one redacted line; the traceback too at debug level (-vv)",
    ExitCode.OUTAGE: "the API or S3 stayed unreachable (past --max-outage, or at start): nothing failed, "
    "a rerun resumes",
}


class SlngBulkError(Exception):
    """Base of every error this package raises on purpose. Messages are one line and secret-free."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class ConfigError(SlngBulkError):
    """Nothing can start: a missing key or source, a bad setting, an unusable ledger."""

    exit_code = ExitCode.CONFIG


class LockHeldError(SlngBulkError):
    exit_code = ExitCode.LOCKED


class LedgerWriteError(SlngBulkError):
    """The ledger stopped accepting writes mid-run (disk full, I/O error). The run stops promptly:
    what was committed before stays consistent, and a rerun resumes from it."""

    exit_code = ExitCode.LEDGER


class OutageError(SlngBulkError):
    """The API or S3 did not answer at all (refused, unresolvable, timing out, 5xx for everything)
    for longer than --max-outage, or from the start: the run ends without failing a file."""

    exit_code = ExitCode.OUTAGE


class TransferError(SlngBulkError):
    """A failed remote step (API call or S3 transfer), classified."""

    def __init__(
        self,
        message: str,
        error_class: ErrorClass,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.status = status
        self.retry_after = retry_after

    @property
    def is_transient(self) -> bool:
        return self.error_class is ErrorClass.TRANSIENT


class NetworkError(TransferError):
    """A request that got no answer: refused, reset, timed out, a name that does not resolve.
    Always transient; whether it landed is unknown."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorClass.TRANSIENT)


class AuthenticationError(TransferError):
    """The API refused the key: every file would be refused too, so the run ends. Raised by the
    library's commands once the run's counters are saved; `run_stats` holds them (a RunStats)."""

    exit_code = ExitCode.AUTH

    def __init__(self, message: str, *, status: int | None = None, run_stats: Any = None) -> None:
        super().__init__(message, ErrorClass.AUTH, status=status)
        self.run_stats = run_stats


class UrlRefusedError(TransferError):
    """S3 refused the presigned URL (HTTP 403). `expired`: S3 said so, or the URL was past its life.

    Either way the cure is a fresh URL; a 403 that is not about expiry and that a fresh URL does not
    cure is permanent (the runner decides, since only it knows whether the URL was fresh).
    """

    def __init__(self, message: str, *, expired: bool, status: int | None = 403) -> None:
        super().__init__(message, ErrorClass.EXPIRED, status=status)
        self.expired = expired


class StalledUploadError(TransferError):
    """An upload that made no progress for --stall-timeout seconds; aborted, retried from byte 0."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorClass.TRANSIENT)


class FileChangedError(SlngBulkError):
    """The file changed (size or mtime) while it was being uploaded."""


TRANSIENT_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


# A read refused for what the file is or who we are: no retry will cure it.
_UNREADABLE: Final = frozenset({errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENXIO, errno.ELOOP})


def file_read_error(exc: OSError) -> TransferError:
    """A file listed as readable that cannot be read when it is sent (an ACL, a disk error): that
    file's failure, never a crash of the run. The message leaves the path to the caller, who names
    the file and its row. Permission-like errors are permanent (a rerun skips it until
    `retry-failed`); others (EIO, a stale NFS handle) transient."""
    permanent = exc.errno in _UNREADABLE
    return TransferError(
        f"cannot read the file: {exc.strerror or exc}",
        ErrorClass.PERMANENT if permanent else ErrorClass.TRANSIENT,
    )


def classify_api_status(status: int) -> ErrorClass:
    """Class of an error status from the SLNG API (not S3)."""
    if status in (401, 403):
        return ErrorClass.AUTH
    if status == 404:
        return ErrorClass.NOT_FOUND
    if status == 409:
        return ErrorClass.CONFLICT
    if status in TRANSIENT_STATUSES:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


S3_TRANSIENT_CODES: Final = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"})


def classify_s3_status(status: int, code: str | None, url_expired: bool) -> ErrorClass:
    """Class of an error from the presigned S3 URL.

    A 403 usually means the URL expired or its signature no longer matches what we send; a fresh
    URL cures the first and proves the second, so both go through re-presign (the runner turns a
    403 that a fresh URL does not cure into a permanent failure).
    """
    if status == 403 or url_expired:
        return ErrorClass.EXPIRED
    if status in TRANSIENT_STATUSES or code in S3_TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


def s3_says_expired(status: int, code: str | None, message: str | None) -> bool:
    """AWS answers an expired presigned URL with 403 AccessDenied "Request has expired"."""
    return status == 403 and code == "AccessDenied" and "expired" in (message or "").lower()
