"""What every part of the emulated API shares: its settings, the job state, the bucket, the fault
plan, the counters and the clock (a test may give a fake one)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.sandbox.config import SandboxConfig
from pipeline.sandbox.injector import FaultInjector
from pipeline.sandbox.objects import ObjectStore
from pipeline.sandbox.request_stats import StatsRecorder
from pipeline.sandbox.state import SandboxState


@dataclass(eq=False)  # compared by identity, as the handlers bound to it are
class ApiPart:
    config: SandboxConfig
    state: SandboxState
    store: ObjectStore
    injector: FaultInjector
    stats: StatsRecorder
    clock: Callable[[], float] = time.time
