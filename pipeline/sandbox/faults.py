"""The fault plan: what the sandbox should do wrong, and how often.

A plan is data (pydantic), so the same description can come from a TOML/JSON file, the command line,
a test, or `POST /__sandbox__/faults`. Deciding *when* a fault fires lives in `injector.py`.

Example (TOML)::

    seed = 7
    s3_bandwidth_bytes_per_second = 2_000_000

    [operations.create]
    errors = [{status = 503, probability = 0.1}, {status = 429, nth = [2], retry_after = 1}]
    lost_response = {nth = [3]}
    latency = {distribution = "uniform", low_ms = 5, high_ms = 40}   # or {fixed_ms = 3000, nth = [1]}
    rate_limit = {per_second = 10}

    [operations.put]
    reset = {after_bytes = 65536, nth = [1]}
    signature_mismatch = {nth = [2]}   # 403 SignatureDoesNotMatch, however fresh the URL

    [short_expiry]
    expires_in = 2
    fraction = 0.5

    [outage]              # every request to these servers fails, for `seconds` from when the plan is set
    servers = ["api"]     # and/or "s3"
    mode = "503"          # or "refuse": the connection is dropped unanswered
    seconds = 10          # omitted: until the plan is replaced
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Operation = Literal["presign", "put", "create", "get", "list", "files", "download", "delete"]
OPERATIONS: tuple[str, ...] = get_args(Operation)
InjectedStatus = Literal[429, 500, 502, 503, 504]
ExpiryTarget = Literal["presign", "files"]
S3_OPERATIONS = frozenset({"put", "download"})
Server = Literal["api", "s3"]


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Trigger(_Plan):
    """When a fault fires: on the listed 1-based occurrences of its operation, or at random."""

    probability: float = Field(default=0.0, ge=0.0, le=1.0)
    nth: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _positive_nth(self) -> Trigger:
        if any(n < 1 for n in self.nth):
            raise ValueError("nth values are 1-based")
        return self


class StatusFault(Trigger):
    """Answer with an error status instead of serving the request."""

    status: InjectedStatus
    retry_after: float | None = Field(default=None, ge=0)
    retry_after_http_date: bool = False  # send Retry-After as an HTTP date, not seconds


class ResetFault(Trigger):
    """Read this many request-body bytes, then abort the TCP connection."""

    after_bytes: int = Field(default=0, ge=0)


class LatencyFault(_Plan):
    """Delay before the request is served; `probability` defaults to every request. With `nth`,
    only those 1-based occurrences of the operation are delayed (a late first download, a hung
    fifth one) and `probability` is not consulted."""

    distribution: Literal["fixed", "uniform", "exponential"] = "fixed"
    fixed_ms: float = Field(default=0.0, ge=0)
    low_ms: float = Field(default=0.0, ge=0)
    high_ms: float = Field(default=0.0, ge=0)
    mean_ms: float = Field(default=0.0, ge=0)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    nth: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _positive_nth(self) -> LatencyFault:
        if any(n < 1 for n in self.nth):
            raise ValueError("nth values are 1-based")
        return self


class RateLimit(_Plan):
    """Token bucket; requests above it get 429 with Retry-After."""

    per_second: float = Field(gt=0)
    burst: int | None = Field(default=None, ge=1)


class OperationFaults(_Plan):
    errors: list[StatusFault] = Field(default_factory=list)
    reset: ResetFault | None = None
    lost_response: Trigger | None = None  # served and committed, then the connection is dropped
    latency: LatencyFault | None = None
    rate_limit: RateLimit | None = None
    # put only: S3 answers 403 SignatureDoesNotMatch however fresh the URL (a clock or proxy problem)
    signature_mismatch: Trigger | None = None


class ShortExpiry(_Plan):
    """Presigned URLs that expire early, for a fraction of presigns (1.0 = all)."""

    expires_in: int = Field(default=1, ge=1)
    fraction: float = Field(default=1.0, ge=0.0, le=1.0)
    applies_to: list[ExpiryTarget] = Field(default_factory=lambda: list[ExpiryTarget](["presign"]))
    report_actual: bool = True  # False: the API keeps saying the configured expires_in


class Outage(_Plan):
    """The whole service down for a while: every request to `servers` (the control routes under
    /__sandbox__ excepted) answers 503, or (`refuse`) has its connection dropped unanswered."""

    servers: list[Server] = Field(default_factory=lambda: list[Server](["api"]), min_length=1)
    mode: Literal["503", "refuse"] = "503"
    seconds: float | None = Field(default=None, gt=0)  # from when the plan is set; None: until replaced


class FaultPlan(_Plan):
    """Everything the sandbox may inject. The default plan injects nothing."""

    seed: int = 0
    operations: dict[str, OperationFaults] = Field(default_factory=dict)
    short_expiry: ShortExpiry | None = None
    s3_bandwidth_bytes_per_second: int | None = Field(default=None, gt=0)
    outage: Outage | None = None

    @field_validator("operations")
    @classmethod
    def _known_operations(cls, value: dict[str, OperationFaults]) -> dict[str, OperationFaults]:
        unknown = sorted(set(value) - set(OPERATIONS))
        if unknown:
            raise ValueError(f"unknown operation(s) {unknown}; known: {', '.join(OPERATIONS)}")
        misplaced = sorted(op for op, faults in value.items() if faults.signature_mismatch and op != "put")
        if misplaced:
            raise ValueError(f"signature_mismatch applies to put only, not {', '.join(misplaced)}")
        return value

    @classmethod
    def from_file(cls, path: str | Path) -> FaultPlan:
        """Load a plan from TOML (`.toml`) or JSON (anything else)."""
        p = Path(path)
        raw = p.read_bytes()
        data = tomllib.loads(raw.decode()) if p.suffix.lower() == ".toml" else json.loads(raw)
        return cls.model_validate(data)
