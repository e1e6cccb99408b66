"""Fault tolerance: safe retries, Retry-After, pool-wide rate control, re-presign, stalls, auth abort.

The end-to-end tests run the real pipeline against the sandbox and assert on what the sandbox saw
(request counts, outcomes and arrival times recorded server side), never on how fast anything is:
a time is only ever asserted as a lower bound ("waited at least"), or as the spec's one-second
auth-abort bound.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiolimiter import AsyncLimiter

from pipeline.errors import (
    AuthenticationError,
    ErrorClass,
    ExitCode,
    TransferError,
    classify_api_status,
    classify_s3_status,
    s3_says_expired,
)
from pipeline.ledger import FileRecord, FileState, SqliteLedger
from pipeline.logs import LOGGER_NAME
from pipeline.observe.progress import ProgressDisplay
from pipeline.observe.stats import RunStats, slowed_rates_text, summary_lines, throttle_summary_lines
from pipeline.sandbox import FaultPlan, Sandbox, SandboxConfig
from pipeline.storage.upload import _take_bandwidth
from pipeline.transport.rates import AdaptiveRate, RateControl
from pipeline.transport.retry import RetryPolicy, retry_transient
from tests.conftest import FAST_STEP_SECONDS
from tests.support.audio import make_tree
from tests.support.clock import FakeClock
from tests.support.runs import assert_exactly_once, run_cli, run_submit, successful_creates

pytestmark = pytest.mark.anyio

API_OPS = ("presign", "create", "get", "list", "files", "delete")
FAST_RATES = {"max_create_rps": 500.0, "max_presign_rps": 500.0, "max_read_rps": 500.0}


@pytest.fixture(autouse=True)
def _isolated_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))


# --- what the sandbox saw, with timestamps ---------------------------------------------------------


@dataclass
class Seen:
    """Requests as the sandbox saw them: arrivals (before any fault) and outcomes, time-stamped."""

    arrivals: list[tuple[float, float, str]] = field(default_factory=list)  # (monotonic, wall, op)
    outcomes: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic, op, outcome)

    def arrived(self, op: str) -> list[float]:
        return [at for at, _wall, o in self.arrivals if o == op]

    def arrived_wall(self, op: str) -> list[float]:
        return [wall for _at, wall, o in self.arrivals if o == op]

    def first_outcome(self, outcome: str, ops: tuple[str, ...] = API_OPS) -> float | None:
        return next((at for at, op, o in self.outcomes if o == outcome and op in ops), None)


def watch(
    sb: Sandbox,
    on_arrival: Callable[[str, int], None] | None = None,
    on_outcome: Callable[[str, str], None] | None = None,
) -> Seen:
    """Record every faultable request the sandbox receives and what the client got back.

    `on_arrival(op, nth)` and `on_outcome(op, outcome)` run on the sandbox's loop.
    """
    seen = Seen()

    def arrived(op: str, nth: int) -> None:
        seen.arrivals.append((time.monotonic(), time.time(), op))
        if on_arrival is not None:
            on_arrival(op, nth)

    def finished(op: str, outcome: str) -> None:
        seen.outcomes.append((time.monotonic(), op, outcome))
        if on_outcome is not None:
            on_outcome(op, outcome)

    sb.listen(on_arrival=arrived, on_outcome=finished)
    return seen


def revoke_key(sb: Sandbox) -> None:
    """The API starts refusing the key (as if revoked in the dashboard)."""
    sb.set_api_keys("sk-someone-else")


def plan(data: dict[str, Any]) -> FaultPlan:
    return FaultPlan.model_validate(data)


def ledger_rows(path: Path) -> list[FileRecord]:
    return list(SqliteLedger(path).records())


# --- unit: one classification, bounded retries, the rates and how they are shown ---------------------


def test_one_classification_for_every_failure() -> None:
    for status in (400, 413, 422):
        assert classify_api_status(status) is ErrorClass.PERMANENT
    for status in (429, 500, 502, 503, 504):
        assert classify_api_status(status) is ErrorClass.TRANSIENT
        assert classify_s3_status(status, None, url_expired=False) is ErrorClass.TRANSIENT
    assert classify_api_status(401) is classify_api_status(403) is ErrorClass.AUTH
    assert classify_s3_status(503, "SlowDown", url_expired=False) is ErrorClass.TRANSIENT
    assert classify_s3_status(400, "RequestTimeout", url_expired=False) is ErrorClass.TRANSIENT
    assert classify_s3_status(403, "AccessDenied", url_expired=False) is ErrorClass.EXPIRED
    assert classify_s3_status(400, "InvalidArgument", url_expired=False) is ErrorClass.PERMANENT
    assert s3_says_expired(403, "AccessDenied", "Request has expired")
    assert not s3_says_expired(403, "SignatureDoesNotMatch", "The request signature we calculated ...")


async def test_a_retry_after_longer_than_the_budget_ends_the_retries_instead_of_sleeping() -> None:
    calls = 0

    async def throttled() -> None:
        nonlocal calls
        calls += 1
        raise TransferError("429", ErrorClass.TRANSIENT, status=429, retry_after=60.0)

    with pytest.raises(TransferError):
        await retry_transient(RetryPolicy(retries=5, max_elapsed=1.0), throttled)
    assert calls == 1, "no sleep may run past --retry-max-elapsed"

    calls = 0
    with pytest.raises(TransferError):  # a shared deadline (a per-file budget) is honoured the same way
        await retry_transient(RetryPolicy(retries=5), throttled, deadline=time.monotonic() + 1.0)
    assert calls == 1


def test_live_rates_are_shown_in_progress_and_summarised() -> None:
    clock = FakeClock()
    rates = RateControl(
        create=AdaptiveRate("create", 80.0, clock=clock),
        presign=AdaptiveRate("presign", 80.0, clock=clock),
        read=AdaptiveRate("read", 50.0, clock=clock),
    )
    stats = RunStats(run_id="t")
    stats.rates = rates.live
    display = ProgressDisplay(stats, "none", 1.0, "text")
    for i in range(20):  # the server accepted 20 in the last second
        clock.now = i * 0.05
        rates.create.succeeded()
    assert "rps" not in display.counts_text()
    rates.create.throttled()  # seen by the display without any copy
    assert "slowed by the server: create 20.0/80 rps accepted (sending 18)" in display.counts_text()
    assert slowed_rates_text(rates.snapshot()) == "create 20.0/80 rps accepted (sending 18)"
    assert throttle_summary_lines(rates.snapshot()) == [
        "create rate: 20.0/80 rps accepted; throttled 1x by 429/503, lowest 18, ended at 18"
    ]
    assert rates.snapshot()["create"]["accepted_mean"] == 20.0


async def test_bandwidth_is_taken_in_steps_the_limiter_accepts() -> None:
    class Recording(AsyncLimiter):
        def __init__(self) -> None:
            super().__init__(1000, 1.0)
            self.taken: list[float] = []

        async def acquire(self, amount: float = 1) -> None:
            assert amount <= self.max_rate
            self.taken.append(amount)

    limiter = Recording()
    await _take_bandwidth(limiter, 4096)  # a chunk larger than one second's worth of bandwidth
    assert limiter.taken == [1000, 1000, 1000, 1000, 96]


# --- end to end: the chaos run ------------------------------------------------------------------------


def chaos_plan(seed: int) -> FaultPlan:
    """On every operation: 5% 5xx, 3% 429 with Retry-After; 2% resets mid-PUT, 1% lost creates,
    and 20% of the upload URLs short-lived."""
    errors = [{"status": s, "probability": 0.0125} for s in (500, 502, 503, 504)]
    errors.append({"status": 429, "probability": 0.03, "retry_after": 1})
    ops: dict[str, Any] = {op: {"errors": errors} for op in ("presign", "put", "create", "get")}
    ops["put"]["reset"] = {"after_bytes": 512, "probability": 0.02}
    ops["create"]["lost_response"] = {"probability": 0.01}
    return plan({"seed": seed, "operations": ops, "short_expiry": {"expires_in": 1, "fraction": 0.2}})


@pytest.mark.slow
async def test_chaos_500_files_every_one_done_exactly_once(sandbox: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "audio", 500, seconds=0.1)  # 1.6 kB each: a reset lands mid-body
    sandbox.set_faults(chaos_plan(seed=2024))
    ledger = tmp_path / "chaos.db"

    started = time.monotonic()
    stats = await run_submit(sandbox, [tmp_path / "audio"], ledger, concurrency=32, retries=10, **FAST_RATES)
    elapsed = time.monotonic() - started

    assert (stats.created + stats.already_created, stats.failed) == (500, 0), stats.failures[:3]
    assert stats.exit_code() is ExitCode.OK
    assert_exactly_once(sandbox, files)
    injected = sandbox.stats().injected
    for kind in ("status_500", "status_502", "status_503", "status_504", "status_429"):
        assert injected.get(kind, 0) > 0, kind
    assert injected.get("reset", 0) > 0 and injected.get("lost_response", 0) > 0
    assert injected.get("short_expiry", 0) > 0
    assert stats.already_created >= 1, "a lost create response is resolved by asking, not resending"
    assert stats.represigns >= 1, "an expired URL is presigned again, never a failed file"
    assert stats.retries > 0 and stats.retry_classes["HTTP 429"] > 0

    rows = ledger_rows(ledger)
    assert all(r.state is FileState.CREATED for r in rows)
    attempts = [r.attempts for r in rows]
    assert min(attempts) == 1 and max(attempts) > 1
    # Every attempt is in the ledger: one per file, plus each fresh URL, plus each retry.
    assert sum(attempts) == stats.queued + stats.represigns + stats.retries

    report = run_cli("report", "--ledger", str(ledger), "--format", "jsonl")
    assert report.returncode == 0, report.stderr
    exported = [json.loads(line) for line in report.stdout.splitlines()]
    retried = sum(a > 1 for a in attempts)
    assert len(exported) == 500 and sum(row["attempts"] > 1 for row in exported) == retried
    print(
        f"\nchaos: {elapsed:.1f} s, {stats.retries} retries {dict(stats.retry_classes)}, "
        f"{stats.represigns} fresh URLs, {stats.already_created} confirmed after a lost response, "
        f"{sum(a > 1 for a in attempts)} files with attempts > 1 (max {max(attempts)}), rates {stats.rates}"
    )
    assert elapsed < 120, "the CI budget for the chaos run is two minutes"


# --- Retry-After --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "http_date"), [("presign", False), ("put", True), ("create", False), ("create", True)]
)
@pytest.mark.slow
async def test_retry_after_is_honoured_in_both_forms(
    sandbox: Sandbox, tmp_path: Path, op: str, http_date: bool
) -> None:
    files = make_tree(tmp_path / "a", 1)
    wait = 3 if http_date else 2
    sandbox.set_faults(
        plan(
            {
                "operations": {
                    op: {
                        "errors": [
                            {
                                "status": 429,
                                "nth": [1],
                                "retry_after": wait,
                                "retry_after_http_date": http_date,
                            }
                        ]
                    }
                }
            }
        )
    )
    seen = watch(sandbox)

    stats = await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db")

    if op == "put":  # S3's 429 (SlowDown) is a retry of the file's
        assert stats.created == 1 and stats.retry_classes["HTTP 429"] == 1
    else:  # the API's is no retry: the request waited its turn, the file's budget untouched
        assert stats.created == 1 and stats.retries == 0 and stats.rates[op]["throttles"] == 1
    assert_exactly_once(sandbox, files)
    first, second = seen.arrived(op)
    if http_date:
        # The header said "not before <date>", a whole second (formatdate truncates) at most `wait`
        # after the first request arrived: the retry must not arrive before that date.
        first_wall, second_wall = seen.arrived_wall(op)
        assert second_wall >= math.floor(first_wall + wait) - 0.001
        assert second - first >= wait - 1
    else:
        assert second - first >= wait  # the answer left after the first arrival: the wait is all on top
    if op == "create":
        assert "get" not in sandbox.stats().requests, "a 429 was not processed: no need to ask about it"


# --- pool-wide rate control ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_pool_slows_down_under_429s_and_recovers(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = make_tree(tmp_path / "a", 80)
    sandbox.set_faults(plan({"operations": {"create": {"rate_limit": {"per_second": 2, "burst": 1}}}}))
    throttling = anyio.Event()

    def on_outcome(op: str, outcome: str) -> None:
        if outcome == "429":
            throttling.set()

    seen = watch(sandbox, on_outcome=on_outcome)
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)  # the progress lines, as a log reader sees them
    ceiling = 20.0
    throttled_for = 3.0
    lifted_at: list[float] = []

    async def lift_after_a_while() -> None:
        await throttling.wait()
        await anyio.sleep(throttled_for)
        sandbox.set_faults(FaultPlan())
        lifted_at.append(time.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(lift_after_a_while)
        stats = await run_submit(
            sandbox,
            [tmp_path / "a"],
            tmp_path / "l.db",
            concurrency=32,
            max_create_rps=ceiling,
            max_presign_rps=200.0,
            max_read_rps=200.0,
            progress="lines",
            progress_interval=0.1,
        )
        tg.cancel_scope.cancel()

    assert (stats.created, stats.failed) == (80, 0)
    assert_exactly_once(sandbox, files)
    create = stats.rates["create"]
    assert create["throttles"] >= 1 and create["lowest"] <= ceiling / 4, create
    assert create["current"] > create["lowest"], "the rate climbs back while requests succeed"
    assert stats.rates["presign"]["throttles"] == 0 and stats.rates["presign"]["lowest"] == 200.0

    # At the sandbox: once the pool has had a second to react, creates arrive well below the
    # ceiling (32 workers each honouring Retry-After alone would still come at ~20/s).
    first_429 = seen.first_outcome("429", ("create",))
    assert first_429 is not None and lifted_at
    window = (first_429 + 1.0, lifted_at[0])
    during = [t for t in seen.arrived("create") if window[0] <= t < window[1]]
    observed = len(during) / (window[1] - window[0])
    print(f"\ncreates while throttled: {observed:.1f}/s (ceiling {ceiling:g}); rates {stats.rates['create']}")
    assert observed <= ceiling / 2, len(during)
    shown = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress")]
    assert any("create " in text and f"/{ceiling:g} rps" in text for text in shown), shown[-5:]


async def test_max_bandwidth_caps_the_total_upload_rate(sandbox: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "a", 4, seconds=4.0)  # 64 kB each
    total = sum(f.stat().st_size for f in files)
    cap = 100_000

    started = time.monotonic()
    stats = await run_submit(
        sandbox, [tmp_path / "a"], tmp_path / "l.db", concurrency=4, max_bandwidth=cap, chunk_size=8192
    )
    elapsed = time.monotonic() - started

    assert stats.created == 4 and stats.bytes_sent == total
    assert_exactly_once(sandbox, files)
    # The bucket lets one second's worth through at once; the rest is paced at `cap` bytes/s.
    assert elapsed >= (total - cap) / cap * 0.95


# --- expired and refused URLs -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("client_knows", [True, False], ids=["client-side-expiry", "s3-says-expired"])
async def test_an_expired_url_is_presigned_again_then_put_again(
    sandbox: Sandbox, tmp_path: Path, client_knows: bool
) -> None:
    files = make_tree(tmp_path / "a", 1)
    # URLs live 2 s; the first PUT is answered 503 and Retry-After 3, so the retry finds it expired.
    # Either the API reported the short life (the client replaces the URL without trying it) or it
    # did not (S3 refuses the PUT with 403 "Request has expired").
    sandbox.set_faults(
        plan(
            {
                "operations": {"put": {"errors": [{"status": 503, "nth": [1], "retry_after": 3}]}},
                "short_expiry": {"expires_in": 2, "fraction": 1.0, "report_actual": client_knows},
            }
        )
    )

    stats = await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db")

    assert (stats.created, stats.failed, stats.represigns) == (1, 0, 1)
    assert_exactly_once(sandbox, files)
    requests = sandbox.stats().requests
    assert requests["presign"].total == 2
    expected_puts = {"503": 1, "200": 1} if client_knows else {"503": 1, "403": 1, "200": 1}
    assert requests["put"].by_status == expected_puts
    (row,) = ledger_rows(tmp_path / "l.db")
    assert row.attempts == 3  # the file, its PUT retry, its fresh URL


async def test_an_s3_403_that_a_fresh_url_does_not_cure_is_permanent(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    make_tree(tmp_path / "a", 1)
    sandbox.set_faults(plan({"operations": {"put": {"signature_mismatch": {"probability": 1.0}}}}))

    stats = await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db")

    assert (stats.created, stats.failed, stats.represigns) == (0, 1, 1)
    assert stats.exit_code() is ExitCode.FAILED
    requests = sandbox.stats().requests
    assert requests["presign"].total == 2 and requests["put"].by_status == {"403": 2}
    (row,) = ledger_rows(tmp_path / "l.db")
    assert row.state is FileState.FAILED and row.error_class == "permanent"
    assert row.error is not None and "SignatureDoesNotMatch" in row.error and "fresh URL" in row.error


async def test_a_failed_file_is_named_with_its_manifest_row(sandbox: Sandbox, tmp_path: Path) -> None:
    """A failure names where the file came from, as a rejection does: the user fixes that row."""
    (audio,) = make_tree(tmp_path / "a", 1)
    manifest = tmp_path / "batch.csv"
    manifest.write_text(f"path\n{audio}\n")
    sandbox.set_faults(plan({"operations": {"put": {"signature_mismatch": {"probability": 1.0}}}}))

    stats = await run_submit(sandbox, [manifest], tmp_path / "l.db")

    (failure,) = stats.failures
    assert (failure.path, failure.source, failure.line) == (str(audio), str(manifest), 2)
    assert f"FAILED {audio} ({manifest}:2): " in "\n".join(summary_lines(stats))
    (listed,) = stats.summary()["failures"]
    assert (listed["source"], listed["line"]) == (str(manifest), 2)


# --- stalled uploads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stall",
    [
        {"operations": {"put": {"latency": {"fixed_ms": 5000}}}},  # S3 takes the body, never answers
        {"s3_bandwidth_bytes_per_second": 20},  # S3 trickles the body in
    ],
    ids=["no-answer", "trickle"],
)
async def test_a_stalled_upload_is_aborted_and_retried_from_byte_zero(
    sandbox: Sandbox, tmp_path: Path, stall: dict[str, Any]
) -> None:
    files = make_tree(tmp_path / "a", 2)
    sandbox.set_faults(plan(stall))

    def lift(op: str, nth: int) -> None:
        if op == "put" and nth == 3:  # both files have stalled at least once: S3 recovers
            sandbox.injector.set_plan(FaultPlan())

    watch(sandbox, lift)

    stats = await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db", stall_timeout=0.3, concurrency=2)

    assert (stats.created, stats.failed) == (2, 0)
    assert stats.retry_classes["stalled upload"] >= 2
    assert_exactly_once(sandbox, files)  # whole, byte-identical objects: each retry sent from byte 0
    assert sum(r.attempts for r in ledger_rows(tmp_path / "l.db")) >= 4


# --- --max-failures -------------------------------------------------------------------------------


async def test_max_failures_stops_taking_new_files(tmp_path: Path) -> None:
    make_tree(tmp_path / "a", 20, seconds=0.5)  # 8 kB each: all too large for this API (413)
    config = SandboxConfig(job_step_seconds=FAST_STEP_SECONDS, max_upload_bytes=2000)
    async with Sandbox(config).run() as sb:
        stats = await run_submit(sb, [tmp_path / "a"], tmp_path / "l.db", concurrency=2, max_failures=3)
        creates = sb.stats().requests["create"]

    assert stats.interrupted is not None and "--max-failures 3" in stats.interrupted
    assert stats.exit_code() is ExitCode.INTERRUPTED
    # Files already taken are finished and recorded: at most the other worker's, plus (unless
    # workers check the stop flag before taking a queued item) the channel's buffer of 2 and the
    # one the producer was handing over.
    assert 3 <= stats.failed <= 3 + 1 + 2 + 1
    assert creates.total == stats.failed and creates.by_status == {"413": stats.failed}
    rows = ledger_rows(tmp_path / "l.db")
    failed = [r for r in rows if r.state is FileState.FAILED]
    assert len(failed) == stats.failed and len(rows) < 20
    assert all(r.error_class == "permanent" and r.error is not None and "413" in r.error for r in failed)


async def test_running_out_of_transient_retries_is_not_a_permanent_failure(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    make_tree(tmp_path / "a", 3)
    sandbox.set_faults(plan({"operations": {"presign": {"errors": [{"status": 502, "probability": 1.0}]}}}))

    stats = await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db", retries=1, max_failures=1)

    assert stats.failed == 3 and stats.interrupted is None and stats.exit_code() is ExitCode.FAILED
    rows = ledger_rows(tmp_path / "l.db")
    assert {r.error_class for r in rows} == {"transient"}
    assert [r.attempts for r in rows] == [2, 2, 2]  # the failed presign and its one retry


async def test_each_presign_is_one_attempt_whether_it_is_answered_or_refused(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    make_tree(tmp_path / "a", 3)
    sandbox.set_faults(plan({"operations": {"presign": {"errors": [{"status": 502, "nth": [2]}]}}}))

    stats = await run_submit(sandbox, [tmp_path / "a"], tmp_path / "l.db", concurrency=1, retries=0)

    assert (stats.created, stats.failed) == (2, 1)
    rows = ledger_rows(tmp_path / "l.db")
    # Answered, the attempt is counted in the presigned write; refused, on its own.
    outcomes = sorted((r.state.value, r.attempts) for r in rows)
    assert outcomes == [("created", 1), ("created", 1), ("failed", 1)]


# --- authentication failure ----------------------------------------------------------------------


async def test_an_auth_failure_stops_every_worker_at_once(sandbox: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "a", 120)
    concurrency = 8

    def revoke_on_tenth_create(op: str, nth: int) -> None:
        if op == "create" and nth == 10:
            revoke_key(sandbox)

    seen = watch(sandbox, revoke_on_tenth_create)
    ledger = tmp_path / "l.db"

    with pytest.raises(AuthenticationError) as refused:  # the library raises it, counters attached
        await run_submit(sandbox, [tmp_path / "a"], ledger, concurrency=concurrency, **FAST_RATES)
    returned = time.monotonic()
    stats = refused.value.run_stats
    assert isinstance(stats, RunStats) and str(refused.value) == stats.auth_failure
    await anyio.sleep(0.3)

    assert stats.auth_failure is not None and stats.exit_code() is ExitCode.AUTH
    assert "refused the key" in stats.auth_failure and "SLNG_API_KEY" in stats.auth_failure
    assert sandbox.api_key not in stats.auth_failure
    first_403 = seen.first_outcome("403")
    assert first_403 is not None
    after = [(at, op) for at, _wall, op in seen.arrivals if at > first_403]
    # Only requests already on their way when the first 403 came back may arrive after it.
    assert len(after) < concurrency, after
    assert sum(1 for _at, op, o in seen.outcomes if o == "403" and op in API_OPS) <= concurrency
    assert all(at <= returned for at, _op in after), "nothing is sent once the run has returned"
    assert returned - first_403 < 1.0, "the whole run stops within a second"

    # In-flight work is recorded: every job the API created is created or creating in the ledger,
    # no file is failed for it, and a rerun with a valid key finishes the rest exactly once.
    states = {r.job_id: r.state for r in ledger_rows(ledger)}
    in_flight_ok = {FileState.CREATED, FileState.CREATING}
    assert {states[job_id] for job_id in successful_creates(sandbox)} <= in_flight_ok
    assert FileState.FAILED not in states.values()
    sandbox.set_api_keys(sandbox.api_key)
    rerun = await run_submit(sandbox, [tmp_path / "a"], ledger, concurrency=concurrency, **FAST_RATES)
    assert rerun.failed == 0 and rerun.exit_code() is ExitCode.OK
    assert_exactly_once(sandbox, files)


def test_cli_auth_failure_mid_run_exit_code_and_message_without_the_key(
    sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    make_tree(tmp_path / "in", 60)

    def revoke_on_fifth_create(op: str, nth: int) -> None:
        if op == "create" and nth == 5:
            revoke_key(sandbox_thread)

    watch(sandbox_thread, revoke_on_fifth_create)
    env = {
        "SLNG_API_KEY": sandbox_thread.api_key,
        "SLNG_BULK_API_URL": sandbox_thread.api_url,
        "SLNG_BULK_LEDGER": str(tmp_path / "l.db"),
        "SLNG_BULK_LOG_LEVEL": "debug",
    }

    result = run_cli("submit", str(tmp_path / "in"), env=env, cwd=tmp_path)

    assert result.returncode == ExitCode.AUTH, result.stderr[-2000:]
    assert "refused the key" in result.stderr and "SLNG_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert sandbox_thread.api_key not in result.stderr + result.stdout
