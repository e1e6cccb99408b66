"""When the next request may leave: virtual scheduling (GCRA), one slot per request, with a burst of
`burst_seconds` saved up while idle.

Pure: time is passed in, so a test drives it with a fake clock. Unlike a bucket whose units are
priced at the current rate when taken, the saved-up burst can be emptied: after a refusal the
server has just said that its own burst is spent, so ours must not let the requests that waited
out a Retry-After (or queued meanwhile) leave together, each refused again.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Pacer:
    burst_seconds: float = 1.0  # idle time that may be made up at once
    _due: float | None = field(init=False, default=None)  # when the next slot is due

    def reserve(self, interval: float, now: float) -> float:
        """Book a slot `interval` seconds long; seconds to wait before it begins (0: leave now).

        No burst at the start: the first second goes at the rate, not at once (at once, a server
        slower than the ceiling refuses every request in flight before its first refusal lands)."""
        start = now if self._due is None else max(self._due, now - self.burst_seconds)
        self._due = start + interval
        return max(0.0, start - now)

    def empty(self, now: float) -> None:
        """No saved-up burst from now on: the next slot begins no sooner than now."""
        self._due = now if self._due is None else max(self._due, now)
