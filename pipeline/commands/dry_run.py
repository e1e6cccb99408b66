"""`submit --dry-run`: validate every row and file, total up bytes and audio time; no remote call.

Durations come from the files' own headers through mutagen; a file named by many rows is read
once (cached by path, size and mtime; the cache is bounded).
"""

from __future__ import annotations

import sys
import time
from functools import lru_cache

import mutagen

from pipeline.config.settings import Settings
from pipeline.errors import ExitCode
from pipeline.flow.inputs import open_sources
from pipeline.logs import log
from pipeline.observe.stats import human_bytes, plural
from pipeline.sources.rows import FileSpec


@lru_cache(maxsize=65536)
def audio_seconds(path: str, size: int, mtime_ns: int) -> float | None:
    """Duration from the audio header, or None when mutagen cannot tell (the file is still valid)."""
    try:
        info = mutagen.File(path)
    except Exception:  # mutagen raises many types for odd files; a dry run only reports
        return None
    length = getattr(getattr(info, "info", None), "length", None)
    return float(length) if isinstance(length, int | float) and length > 0 else None


def dry_run(sources: list[str], settings: Settings) -> ExitCode:
    rows = open_sources(sources, settings)
    started = time.monotonic()
    valid = rejected = total_bytes = unknown_duration = 0
    seconds = 0.0
    for row in rows:
        if isinstance(row, FileSpec):
            valid += 1
            total_bytes += row.size
            duration = audio_seconds(row.path_text, row.size, row.mtime_ns)
            if duration is None:
                unknown_duration += 1
            else:
                seconds += duration
        else:
            rejected += 1
            log.warning("rejected: %s", row.message())
    elapsed = time.monotonic() - started
    out = sys.stdout
    valid_text, rejected_text = plural(valid, "valid file"), plural(rejected, "rejected row")
    out.write(f"dry run: {valid_text}, {rejected_text}, {human_bytes(total_bytes)}, ")
    out.write(f"{seconds / 3600:.2f} h of audio")
    unknown = plural(unknown_duration, "file")
    out.write(f" ({unknown} of unknown duration)\n" if unknown_duration else "\n")
    out.write(f"checked in {elapsed:.2f} s; nothing was sent\n")
    if rejected:
        return ExitCode.REJECTED
    if valid == 0 and settings.error_on_nothing:
        return ExitCode.NOTHING_TO_DO
    return ExitCode.OK
