"""Logging set-up: plain or JSON lines on stderr, always passed through the secret filter."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal

from pipeline.redact import redact

LOGGER_NAME = "slng_bulk"
log = logging.getLogger(LOGGER_NAME)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            payload.update(extra)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str))


def configure_logging(fmt: Literal["text", "json"], level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if fmt == "json" else _RedactingFormatter("%(asctime)s %(levelname)s %(message)s")
    )
    root = logging.getLogger(LOGGER_NAME)
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # Libraries log too (aiohttp access logs of the in-process sandbox, for instance): same filter.
    for name in ("aiohttp", "pipeline"):
        other = logging.getLogger(name)
        other.handlers[:] = [handler]
        other.setLevel(max(logging.WARNING, root.level))
        other.propagate = False
