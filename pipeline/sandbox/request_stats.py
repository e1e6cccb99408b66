"""Counters behind `GET /__sandbox__/stats`, and the listeners that see the same events live.

Tests assert on these rather than on timing, so every injected fault is counted where it happens,
and every request is counted once with the outcome the client saw (a status code, or `reset` /
`lost` when the connection was dropped). Listeners (`Sandbox.listen`) are called on the sandbox's
loop as each request arrives (before its faults are decided, so a listener may still change the
plan or the keys for it), as it ends, and as each presigned URL is issued.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

from pydantic import BaseModel, Field


class OperationStats(BaseModel):
    total: int = 0
    by_status: dict[str, int] = Field(default_factory=dict)


class SandboxStats(BaseModel):
    requests: dict[str, OperationStats] = Field(default_factory=dict)
    injected: dict[str, int] = Field(default_factory=dict)
    injected_by_operation: dict[str, dict[str, int]] = Field(default_factory=dict)


class StatsRecorder:
    """Mutable counters; `snapshot()` gives the pydantic view."""

    def __init__(self) -> None:
        self._requests: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._injected: Counter[str] = Counter()
        self._injected_by_op: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._arrivals: Counter[str] = Counter()
        self.arrival_listeners: list[Callable[[str, int], None]] = []  # (operation, nth of it)
        self.outcome_listeners: list[Callable[[str, str], None]] = []  # (operation, outcome)
        self.url_listeners: list[Callable[[str], None]] = []  # every presigned URL issued

    def arrived(self, op: str) -> None:
        self._arrivals[op] += 1
        for listener in self.arrival_listeners:
            listener(op, self._arrivals[op])

    def request(self, op: str, outcome: int | str) -> None:
        self._requests[op][str(outcome)] += 1
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
        )
