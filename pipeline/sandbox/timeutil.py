"""Timestamps in the one format the API uses: ISO 8601 UTC with a `Z`, to the millisecond.

Comparisons (list date filters) are done on whole milliseconds so that a timestamp the API printed,
fed back as a filter bound, matches its own job exactly (the bounds are inclusive).
"""

from __future__ import annotations

from datetime import UTC, datetime


def to_ms(epoch: float) -> int:
    return round(epoch * 1000)


def round_ms(epoch: float) -> float:
    """`epoch` rounded to the millisecond, so what is stored is exactly what is printed."""
    return to_ms(epoch) / 1000


def iso_z(epoch: float) -> str:
    ms = to_ms(epoch)
    stamp = datetime.fromtimestamp(ms // 1000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO 8601 date-time; a value without offset is taken as UTC."""
    text = text.strip()
    if "T" in text:  # a "+" offset arrives as a space once a query string is decoded
        text = text.replace(" ", "+")
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()
