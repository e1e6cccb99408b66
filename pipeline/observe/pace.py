"""How fast a run gets through its files: done work over time, over a sliding window.

The rate is measured from work finished (files and bytes), never from the growth of a total, so a
folder walk that keeps finding files does not reset it; the ETA is what remains over that rate, in
files and in bytes, whichever takes longer: many small files are bound by the API's rate, a few
long recordings by the link.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_SECONDS = 30.0  # recent enough to follow a change of pace, long enough to be steady
MAX_SAMPLES = 256  # bounded whatever the refresh rate


@dataclass(frozen=True, slots=True)
class Pace:
    files_per_second: float | None  # None until there is something to measure
    bytes_per_second: float | None


@dataclass
class PaceMeter:
    """Samples (time, files done, bytes sent) as the display refreshes; the rate over the window."""

    clock: Callable[[], float] = time.monotonic
    window: float = WINDOW_SECONDS
    _samples: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))

    def sample(self, files_done: int, bytes_done: int) -> Pace:
        now = self.clock()
        samples = self._samples
        samples.append((now, files_done, bytes_done))
        while len(samples) > 2 and now - samples[1][0] >= self.window:
            samples.popleft()  # keep one sample at or past the window's start
        start, files0, bytes0 = samples[0]
        span = now - start
        if span <= 0:
            return Pace(None, None)
        files_rate = (files_done - files0) / span if files_done > files0 or span >= 1.0 else None
        # A failed PUT takes its bytes back out of the count: never a negative rate.
        bytes_rate = max(0.0, (bytes_done - bytes0) / span) if bytes_done > bytes0 or span >= 1.0 else None
        return Pace(files_rate, bytes_rate)


def eta_seconds(remaining: int, pace: Pace, bytes_per_file: float = 0.0) -> float | None:
    """Seconds left at the current pace, for `remaining` files of `bytes_per_file` on average: the
    longer of the two times, files over the files' rate and bytes over the bytes' rate (the files
    finished so far may be the small ones). None while there is no pace to go by."""
    if remaining <= 0:
        return 0.0
    if not pace.files_per_second:
        return None
    by_files = remaining / pace.files_per_second
    if not pace.bytes_per_second or bytes_per_file <= 0:
        return by_files
    return max(by_files, remaining * bytes_per_file / pace.bytes_per_second)


def clock_text(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
