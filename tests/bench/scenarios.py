"""The benchmarks by name, in the order the suite runs them; each module says what it measures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from tests.bench.chaos import chaos
from tests.bench.cloud_by_url import cloud_by_url
from tests.bench.common import Context
from tests.bench.fleet import fleet
from tests.bench.large_file import large_file
from tests.bench.latency import latency_bound
from tests.bench.rate_limits import bandwidth_bound, fleet_capacity, hidden_capacity, rate_bound
from tests.bench.scale import scale
from tests.bench.small_files import many_small_files

SCENARIOS: Final[dict[str, Callable[[Context], None]]] = {
    "small_files": many_small_files,
    "latency": latency_bound,
    "large_file": large_file,
    "scale": scale,
    "chaos": chaos,
    "fleet": fleet,
    "cloud_by_url": cloud_by_url,
    "rate_bound": rate_bound,
    "hidden_capacity": hidden_capacity,
    "fleet_capacity": fleet_capacity,
    "bandwidth_bound": bandwidth_bound,
}

__all__ = ["SCENARIOS", "Context"]
