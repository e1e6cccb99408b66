"""Counters behind `GET /__sandbox__/stats`.

Tests assert on these rather than on timing, so every injected fault is counted where it happens,
and every request is counted once with the outcome the client saw (a status code, or `reset` /
`lost` when the connection was dropped).
"""

from __future__ import annotations

from collections import Counter, defaultdict

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

    def request(self, op: str, outcome: int | str) -> None:
        self._requests[op][str(outcome)] += 1

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
