"""Counters behind `GET /__sandbox__/stats`, and the listeners that see the same events live.

Tests assert on these rather than on timing, so every injected fault is counted where it happens,
and every request is counted once with the outcome the client saw (a status code, or `reset` /
`lost` when the connection was dropped). Listeners (`Sandbox.listen`) are called on the sandbox's
loop as each request arrives (before its faults are decided, so a listener may still change the
plan or the keys for it), as it ends, and as each presigned URL is issued.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable

from pydantic import BaseModel, Field


class OperationStats(BaseModel):
    total: int = 0
    by_status: dict[str, int] = Field(default_factory=dict)


class SecondCounts(BaseModel):
    """One second of one operation: requests served (2xx) and refused with 429."""

    second: int  # since the sandbox started
    accepted: int = 0
    throttled: int = 0


class SandboxStats(BaseModel):
    requests: dict[str, OperationStats] = Field(default_factory=dict)
    injected: dict[str, int] = Field(default_factory=dict)
    injected_by_operation: dict[str, dict[str, int]] = Field(default_factory=dict)
    # per operation, the last TIMELINE_SECONDS seconds that saw a 2xx or a 429: accepted rate over time
    timeline: dict[str, list[SecondCounts]] = Field(default_factory=dict)


TIMELINE_SECONDS = 3600  # memory is bounded whatever the run's length


class StatsRecorder:
    """Mutable counters; `snapshot()` gives the pydantic view."""

    def __init__(self) -> None:
        self._requests: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._injected: Counter[str] = Counter()
        self._injected_by_op: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._arrivals: Counter[str] = Counter()
        self._started = time.monotonic()
        self._timeline: defaultdict[str, deque[SecondCounts]] = defaultdict(
            lambda: deque(maxlen=TIMELINE_SECONDS)
        )
        self.arrival_listeners: list[Callable[[str, int], None]] = []  # (operation, nth of it)
        self.outcome_listeners: list[Callable[[str, str], None]] = []  # (operation, outcome)
        self.url_listeners: list[Callable[[str], None]] = []  # every presigned URL issued

    def arrived(self, op: str) -> None:
        self._arrivals[op] += 1
        for listener in self.arrival_listeners:
            listener(op, self._arrivals[op])

    def request(self, op: str, outcome: int | str) -> None:
        self._requests[op][str(outcome)] += 1
        accepted = isinstance(outcome, int) and 200 <= outcome < 300
        if accepted or outcome == 429:
            second = int(time.monotonic() - self._started)
            line = self._timeline[op]
            if not line or line[-1].second != second:
                line.append(SecondCounts(second=second))
            if accepted:
                line[-1].accepted += 1
            else:
                line[-1].throttled += 1
        for listener in self.outcome_listeners:
            listener(op, str(outcome))

    def url_issued(self, url: str) -> str:
        for listener in self.url_listeners:
            listener(url)
        return url

    def injected(self, op: str, kind: str) -> None:
        self._injected[kind] += 1
        self._injected_by_op[op][kind] += 1

    def snapshot(self) -> SandboxStats:
        return SandboxStats(
            requests={
                op: OperationStats(total=sum(c.values()), by_status=dict(c))
                for op, c in self._requests.items()
            },
            injected=dict(self._injected),
            injected_by_operation={op: dict(c) for op, c in self._injected_by_op.items()},
            timeline={op: [c.model_copy() for c in line] for op, line in self._timeline.items()},
        )
