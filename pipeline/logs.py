"""Logging set-up: plain or JSON lines on stderr, always passed through the secret filter.

Every logger that can write to stderr during a run goes through one handler whose formatter
redacts (see `pipeline.redact`): ours, aiohttp's (client, and the access log of the in-process
sandbox, whose request lines carry presigned query strings), asyncio's, Python warnings, and the
root logger. An uncaught exception's traceback is redacted too (`sys.excepthook`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
import types
from typing import Any, Literal

from pipeline.redact import redact

LOGGER_NAME = "slng_bulk"
log = logging.getLogger(LOGGER_NAME)

# Library loggers that share our handler. At `debug`, aiohttp's go down to debug with us (the
# sandbox's access log then shows every request, redacted); otherwise they only say warnings.
_LIBRARY_LOGGERS = ("aiohttp", "pipeline")
_QUIET_LOGGERS = ("asyncio", "py.warnings", "filelock")


# Invisible format characters that can reorder or hide text on a terminal (bidi overrides and
# isolates, zero-width characters, BOM): shown as escapes in text logs, whatever wrote them. JSON
# lines are ASCII (json.dumps escapes them).
_INVISIBLE = {
    c: f"\\u{c:04x}" for c in (*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF)
}


class RedactingFilter(logging.Filter):
    """Masks secrets in a record before any handler formats it; for a library user's own handlers
    (`handler.addFilter(RedactingFilter())`). The message is rendered once, then redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record)).translate(_INVISIBLE)


def _clean(value: Any) -> Any:
    """Redact every string inside a JSON-able value (before encoding: escapes cannot hide a secret)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        if record.name != LOGGER_NAME:
            payload["logger"] = record.name
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            payload.update(extra)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        # Redact the values, then the encoded line (a belt over the braces).
        return redact(json.dumps(_clean(payload), default=str))


def _redacting_excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: types.TracebackType | None
) -> None:
    """Last resort for an exception nobody caught: logged (so redacted, and JSON with --log-format
    json) with its traceback, instead of Python's unfiltered print."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    try:
        log.critical("internal error: %s", exc_type.__name__, exc_info=(exc_type, exc, tb))
    except Exception:  # logging itself broke: still never print an unfiltered traceback
        sys.stderr.write(redact("".join(traceback.format_exception(exc_type, exc, tb))))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time: while the progress bar is shown, rich's
    stand-in, which prints the line above the bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_format: list[str] = ["text"]  # as last configured: what the command line's own lines must follow


def json_lines() -> bool:
    """Whether stderr is JSON lines (--log-format json): then every line, the summary and a fatal
    error included, goes through the log as one event."""
    return _format[0] == "json"


def configure_logging(fmt: Literal["text", "json"], level: str) -> None:
    _format[0] = fmt
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if fmt == "json" else _RedactingFormatter("%(asctime)s %(levelname)s %(message)s")
    )
    root = logging.getLogger(LOGGER_NAME)
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    library_level = logging.DEBUG if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
    for name in _LIBRARY_LOGGERS:
        other = logging.getLogger(name)
        other.handlers[:] = [handler]
        other.setLevel(library_level)
        other.propagate = False
    for name in _QUIET_LOGGERS:
        other = logging.getLogger(name)
        other.handlers[:] = [handler]
        other.setLevel(max(logging.WARNING, root.level))
        other.propagate = False
    # Anything else that logs (a library we do not know of) reaches the root; when nobody set the
    # root up (the command line), it gets the same handler instead of Python's unfiltered last resort.
    top = logging.getLogger()
    if not top.handlers or all(getattr(h, "_slng_bulk", False) for h in top.handlers):
        handler._slng_bulk = True  # type: ignore[attr-defined]
        top.handlers[:] = [handler]
        top.setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _redacting_excepthook
