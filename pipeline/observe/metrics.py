"""Prometheus metrics of one run (`--metrics-addr HOST:PORT`), read from its counters at each scrape.

Nothing is counted twice: a collector reads `RunStats`, the request tally (`transport.metrics`)
and the rates' live views when Prometheus asks, so the pipeline's hot path pays nothing for it.
Each run has its own registry (never prometheus_client's global one), and the server thread is
stopped when the run ends. Names follow Prometheus conventions with the `slng_bulk_` prefix.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pipeline.logs import log
from pipeline.observe.stats import RunStats
from pipeline.transport.request_tally import RequestTally

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

OUTCOMES = (
    ("created", "created"),
    ("already_created", "already_created"),
    ("skipped_done", "skipped"),
    ("skipped_unsettled", "unsettled"),
    ("rejected", "rejected"),
    ("failed", "failed"),
    ("changed", "changed"),
)


class _AcceptedRate:
    """Requests the server accepted per second, per operation, since the previous scrape (or the
    run's start): from the tally's counts, so nothing is read that another thread is changing."""

    def __init__(self, tally: RequestTally, started: float) -> None:
        self.tally = tally
        self.last: dict[str, tuple[float, int]] = {}
        self.started = started

    def rate(self, operation: str) -> float:
        now, count = time.monotonic(), self.tally.accepted(operation)
        then, before = self.last.get(operation, (self.started, 0))
        if now - then < 1.0:
            then, before = self.started, 0  # too short to measure: over the whole run instead
        else:
            self.last[operation] = (now, count)
        return (count - before) / max(now - then, 1e-9)


def run_collector(stats: RunStats, rates: Mapping[str, Mapping[str, float]]) -> Collector:
    """A prometheus_client collector of this run (imported here: only a run with metrics needs it)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    accepted = _AcceptedRate(stats.requests, stats.started)

    class RunCollector(Collector):
        def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
            files = CounterMetricFamily(
                "slng_bulk_files", "Files by outcome in this run.", labels=["outcome"]
            )
            for attribute, outcome in OUTCOMES:
                files.add_metric([outcome], getattr(stats, attribute))
            yield files
            yield CounterMetricFamily(
                "slng_bulk_upload_bytes", "Bytes uploaded and confirmed by S3.", value=stats.bytes_sent
            )
            requests = CounterMetricFamily(
                "slng_bulk_requests", "Requests by operation and HTTP status.", labels=["operation", "status"]
            )
            for (operation, status), count in dict(stats.requests.by_status).items():
                requests.add_metric([operation, status], count)
            yield requests
            retries = CounterMetricFamily("slng_bulk_retries", "Retried requests by cause.", labels=["cause"])
            for cause, count in dict(stats.retry_classes).items():
                retries.add_metric([cause], count)
            yield retries
            yield GaugeMetricFamily(
                "slng_bulk_in_flight", "Files being worked on now.", value=stats.in_flight
            )
            yield GaugeMetricFamily(
                "slng_bulk_files_known", "Files named by the sources so far.", value=stats.files_known
            )
            yield GaugeMetricFamily(
                "slng_bulk_sources_read", "1 once the sources are read to the end.", value=stats.sources_read
            )
            views = {name: dict(view) for name, view in dict(rates).items()}
            for metric, help_text, read in (
                ("slng_bulk_rate_accepted_rps", "Requests per second the server accepted.", None),
                ("slng_bulk_rate_ceiling_rps", "The configured ceiling (--max-*-rps).", "ceiling"),
                ("slng_bulk_rate_current_rps", "The rate requests are sent at now.", "current"),
            ):
                gauge = GaugeMetricFamily(metric, help_text, labels=["operation"])
                for name, view in views.items():
                    value = accepted.rate(name) if read is None else view.get(read, 0.0)
                    gauge.add_metric([name], value)
                yield gauge

    return RunCollector()


@contextmanager
def serve_metrics(
    address: str | None, stats: RunStats, rates: Mapping[str, Mapping[str, float]]
) -> Iterator[None]:
    """Serve the run's metrics at http://`address`/metrics until the block ends (nothing if None)."""
    if address is None:
        yield
        return
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(run_collector(stats, rates))
    host, _, port = address.rpartition(":")
    server, thread = start_http_server(int(port), host.strip("[]"), registry=registry)
    bound_host, bound_port = server.server_address[:2]
    log.info(
        "metrics at http://%s:%s/metrics",
        host,
        bound_port,
        extra={"fields": {"event": "metrics_serving", "host": str(bound_host), "port": bound_port}},
    )
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
