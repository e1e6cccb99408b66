"""What the run's requests did, counted where they are sent: by operation and HTTP status.

Plain counters with no exporter behind them, low in the layers so the API client and the upload
can count without knowing who reads (the progress display, `observe.metrics`' Prometheus
endpoint). Updated from the event loop thread only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

CONNECTION_ERROR = "error"  # the status label of a request that got no HTTP answer


@dataclass
class RequestTally:
    """Requests by (operation, status); a status is the HTTP code as text, or "error"."""

    by_status: Counter[tuple[str, str]] = field(default_factory=Counter)
    _accepted: Counter[str] = field(default_factory=Counter)

    def request_done(self, operation: str, status: int | None) -> None:
        self.by_status[(operation, CONNECTION_ERROR if status is None else str(status))] += 1
        if status is not None and 200 <= status < 300:
            self._accepted[operation] += 1

    def accepted(self, operation: str) -> int:
        """Requests of `operation` the server answered with a 2xx."""
        return self._accepted[operation]
