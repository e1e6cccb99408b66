"""`--metrics-addr`: a run serves Prometheus metrics while it runs, scraped here over HTTP.

A real command-line run against the sandbox, slowed by latency so that it lasts: scraped
mid-run, the counters move and agree with the run's own summary; the endpoint is gone after.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.errors import ExitCode
from pipeline.sandbox import FaultPlan, Sandbox, SandboxConfig
from tests.support.audio import make_tree
from tests.support.runs import child_env

FAULTS = {
    "operations": {
        "create": {"latency": {"fixed_ms": 150}, "errors": [{"status": 500, "nth": [3]}]},
    }
}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def slow_sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(faults=FaultPlan.model_validate(FAULTS))).run_in_thread() as sb:
        yield sb


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape(port: int) -> Samples | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.slow
def test_metrics_are_served_during_the_run_and_agree_with_it(slow_sandbox: Sandbox, tmp_path: Path) -> None:
    make_tree(tmp_path / "in", 24)
    port = free_port()
    env = child_env({"SLNG_API_KEY": slow_sandbox.api_key, "SLNG_BULK_API_URL": slow_sandbox.api_url})
    command = [sys.executable, "-m", "pipeline.cli.app", "submit", "in", "--ledger", "l.db"]
    command += ["--concurrency", "2", "--progress", "none", "--metrics-addr", f"127.0.0.1:{port}"]
    command += ["--summary-json", "s.json"]
    child = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    mid_run: Samples | None = None
    try:
        while child.poll() is None:
            samples = scrape(port)
            if samples and 0 < samples[("slng_bulk_files_total", (("outcome", "created"),))] < 24:
                mid_run = samples
                break
            time.sleep(0.05)  # polling for the server to come up, not standing in for an event
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == ExitCode.OK, stderr
    assert mid_run is not None, "the run ended before a scrape saw it working"
    presigned = mid_run[("slng_bulk_requests_total", (("operation", "presign"), ("status", "200")))]
    assert presigned >= mid_run[("slng_bulk_files_total", (("outcome", "created"),))]
    assert mid_run[("slng_bulk_requests_total", (("operation", "put"), ("status", "200")))] >= 1
    assert mid_run.get(("slng_bulk_requests_total", (("operation", "create"), ("status", "500"))), 0) <= 1
    assert 0 <= mid_run[("slng_bulk_in_flight", ())] <= 2
    assert mid_run[("slng_bulk_rate_ceiling_rps", (("operation", "create"),))] == 10.0
    assert mid_run[("slng_bulk_rate_accepted_rps", (("operation", "create"),))] > 0
    assert mid_run[("slng_bulk_upload_bytes_total", ())] > 0
    assert mid_run[("slng_bulk_files_known", ())] >= 1
    assert scrape(port) is None  # stopped with the run
