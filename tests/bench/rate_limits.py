"""The benchmarks at the binding limits (issue 20): each figure is a ratio to the limit that binds.

- `rate_bound`: N files at `--max-create-rps` R = 10, 50, 200, a server with no hidden limit:
  makespan efficiency (N / R) / (last create - first admission), target >= 0.98.
- `hidden_capacity`: the sandbox accepts C = 20 presigns and creates a second (429 above it), the
  user says 1x, 4x, 20x C: efficiency (N / C) / (create span), target >= 0.95; 429s <= 3% of the
  presign and create requests; no file fails. Then the step C -> C/4 -> C mid-run (POST
  /__sandbox__/capacity): seconds from each change until the accepted rate (the sandbox's own
  per-second timeline, over 2 s) is within 10% of the new C, target <= 10 s each way.
- `fleet_capacity`: the same with 3 `work` processes on one PostgreSQL ledger at ceiling 4x C.
- `bandwidth_bound`: a mixed corpus (10 KB to 300 MB, ~1.5 GB; quick ~150 MB) through the
  sandbox's S3 bandwidth cap B: bytes / (last upload - first presign), target >= 0.95 B.

Client CPU per file is printed for each run (no target).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from pipeline.sandbox import FaultPlan
from pipeline.sandbox.timeutil import parse_iso
from tests.bench import data
from tests.bench.common import RATE_CEILING, Context, ledger_stats, slng_submit, small_tree
from tests.bench.fleet import enqueue, fleet_env, list_manifest, run_workers
from tests.bench.procs import Measured
from tests.bench.results import Result
from tests.bench.servers import RunningSandbox
from tests.support.postgres import create_database, drop_database, find_bindir, run_cluster

CAPACITY: Final = 20.0
CEILINGS: Final = (1, 4, 20)  # times C
STEP_SECONDS: Final = 20.0  # each phase of C -> C/4 -> C
FOLLOW_TARGET_S: Final = 10.0
FLEET_WORKERS: Final = 3
KB: Final = 1000
MB: Final = 1000 * KB


def _ratio_check(ctx: Context, scenario: str, target: str, value: float, bound: float, higher: bool) -> None:
    passed = value >= bound if higher else value <= bound
    ctx.suite.check(scenario, target, value, f"{'>=' if higher else '<='} {bound:g}", passed)


def _post_capacity(sb: RunningSandbox, per_second: float) -> int:
    """Set presign and create capacity now; the sandbox second it happened in."""
    body = json.dumps({"presign": per_second, "create": per_second}).encode()
    request = urllib.request.Request(
        f"{sb.api_url}/__sandbox__/capacity", body, {"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30):
        pass
    line = sb.readback("stats")["timeline"].get("create", [])
    return int(line[-1]["second"]) if line else 0


def _refused_share(sb: RunningSandbox) -> tuple[float, int]:
    requests = sb.readback("stats")["requests"]
    total = sum(requests.get(op, {}).get("total", 0) for op in ("presign", "create"))
    refused = sum(requests.get(op, {}).get("by_status", {}).get("429", 0) for op in ("presign", "create"))
    return (refused / total if total else 0.0), total


def _create_span(sb: RunningSandbox) -> tuple[int, float]:
    """(jobs created, seconds from the first create to the last), from the sandbox's own record."""
    times = sorted(parse_iso(a["at"]) for a in sb.readback("jobs")["attempts"] if a["created"])
    return len(times), (times[-1] - times[0]) if len(times) > 1 else 0.0


def _timelines(sb: RunningSandbox) -> dict[str, list[list[int]]]:
    """Per operation, the sandbox's seconds as [second, accepted, throttled]: where the 429s fell."""
    lines = sb.readback("stats")["timeline"]
    return {
        op: [[s["second"], s["accepted"], s["throttled"]] for s in lines.get(op, [])]
        for op in ("presign", "create")
    }


def follow_seconds(timeline: list[dict[str, Any]], change: int, target: float) -> float | None:
    """Seconds from `change` until the accepted rate (mean of 2 s) is within 10% of `target`."""
    accepted = {int(s["second"]): int(s["accepted"]) for s in timeline}
    end = max(accepted, default=change)
    for second in range(change, end):
        rate = (accepted.get(second, 0) + accepted.get(second + 1, 0)) / 2
        if abs(rate - target) <= 0.1 * target:
            return float(second - change)
    return None


def _capacity_plan() -> FaultPlan:
    limit = {"rate_limit": {"per_second": CAPACITY}}
    return FaultPlan.model_validate({"operations": {"presign": limit, "create": limit}})


def _rates(create: float, presign: float) -> list[str]:
    return ["--max-create-rps", f"{create:g}", "--max-presign-rps", f"{presign:g}"]


def _submit_at(
    ctx: Context,
    sb: RunningSandbox,
    manifest: Path,
    ledger: Path,
    *,
    concurrency: int,
    create: float,
    presign: float,
) -> Measured:
    """One `slng-bulk submit` of `manifest` at these create and presign ceilings (requests/s)."""
    return slng_submit(
        ctx,
        [str(manifest)],
        sb.api_url,
        sb.api_key,
        ledger,
        concurrency=concurrency,
        extra=_rates(create, presign),
    )


# --- rate_bound ------------------------------------------------------------------------------------


def rate_bound(ctx: Context) -> None:
    name = "rate_bound"
    seconds = ctx.size(10, 4)
    for limit in (10, 50, 200):
        count = limit * seconds
        manifest = list_manifest(ctx, f"rate-{limit}", small_tree(ctx, "rate", 2000, 1024), count)
        sb = ctx.servers.sandbox()
        ledger = ctx.work / f"rate-{limit}.db"
        try:
            run = _submit_at(ctx, sb, manifest, ledger, concurrency=64, create=limit, presign=RATE_CEILING)
        finally:
            ctx.servers.stop(sb)
        stats = ledger_stats(ledger)
        if stats["created"] != count:
            raise RuntimeError(f"rate {limit}: {stats['created']} of {count} created: {stats['states']}")
        makespan = stats["in_run_span_s"]
        efficiency = (count / limit) / makespan
        ctx.suite.add(
            Result.of_run(
                name,
                f"{count} files at --max-create-rps {limit}",
                run,
                count,
                count / makespan,
                "files/s",
                ratio=efficiency,
                ratio_to="N/R",
                extra={"note": f"makespan {makespan:.2f} s, ideal {count / limit:g} s"},
            )
        )
        _ratio_check(ctx, name, f"makespan efficiency at R={limit}", efficiency, 0.98, True)


# --- hidden capacity, one host or a fleet ----------------------------------------------------------

Runner = Callable[[RunningSandbox, Path, float], Measured]  # (sandbox, manifest, ceiling) -> the run


def _single(ctx: Context, tag: str) -> Runner:
    def run(sb: RunningSandbox, manifest: Path, ceiling: float) -> Measured:
        ledger = ctx.work / f"{tag}-{ceiling:g}-{time.monotonic_ns()}.db"
        return _submit_at(ctx, sb, manifest, ledger, concurrency=16, create=ceiling, presign=ceiling)

    return run


def _fleet(ctx: Context, server: Any) -> Runner:
    def run(sb: RunningSandbox, manifest: Path, ceiling: float) -> Measured:
        database = create_database(server)
        try:
            env = fleet_env(ctx, sb, server.url_for(database))
            enqueue(ctx, env, manifest)
            runs = run_workers(ctx, env, FLEET_WORKERS, ["--concurrency", "8", *_rates(ceiling, ceiling)])
        finally:
            drop_database(server, database)
        slowest = max(runs, key=lambda r: r.wall_s)
        return Measured(
            slowest.argv,
            0,
            slowest.wall_s,
            sum(r.user_s for r in runs),
            sum(r.sys_s for r in runs),
            max(r.max_rss_mb for r in runs),
            "",
            "",
        )

    return run


def _capacity_runs(ctx: Context, name: str, runner: Runner, ceilings: tuple[int, ...]) -> None:
    count = ctx.size(400, 200)
    tree = small_tree(ctx, "capacity", 2000, 1024)
    for times in ceilings:
        ceiling = CAPACITY * times
        manifest = list_manifest(ctx, f"{name}-{times}", tree, count)
        sb = ctx.servers.sandbox(faults=_capacity_plan())
        try:
            run = runner(sb, manifest, ceiling)
            created, span = _create_span(sb)
            share, total = _refused_share(sb)
            timelines = _timelines(sb)
        finally:
            ctx.servers.stop(sb)
        if created != count:
            raise RuntimeError(f"{name} at {times}x C: {created} of {count} jobs created")
        efficiency = ((count - 1) / CAPACITY) / span
        ctx.suite.add(
            Result.of_run(
                name,
                f"{count} files, C={CAPACITY:g}, ceiling {times}x C",
                run,
                count,
                created / span,
                "files/s",
                ratio=efficiency,
                ratio_to="N/C",
                extra={
                    "note": f"create span {span:.1f} s, 429s {share:.1%} of {total}",
                    "timeline": timelines,
                },
            )
        )
        _ratio_check(ctx, name, f"efficiency at {times}x C", efficiency, 0.95, True)
        _ratio_check(ctx, name, f"429 share at {times}x C", share, 0.03, False)


def _step_run(ctx: Context, name: str, runner: Runner) -> None:
    """C for STEP_SECONDS, C/4 for as long, then C again, in one run at ceiling 4x C."""
    phases = (CAPACITY, CAPACITY / 4, CAPACITY)
    count = int(sum(c * STEP_SECONDS for c in phases) * 1.1)
    tree = small_tree(ctx, "capacity", max(2000, count), 1024)
    manifest = list_manifest(ctx, f"{name}-step", tree, count)
    sb = ctx.servers.sandbox(faults=_capacity_plan())
    changes: list[tuple[int, float]] = []
    outcome: list[Measured] = []
    errors: list[BaseException] = []

    def drive() -> None:
        try:
            outcome.append(runner(sb, manifest, CAPACITY * 4))
        except BaseException as exc:
            errors.append(exc)

    try:
        thread = threading.Thread(target=drive, daemon=True)
        thread.start()
        while not sb.readback("stats")["timeline"].get("create"):  # the clock starts at the first create
            time.sleep(0.1)
        for capacity in phases[1:]:
            time.sleep(STEP_SECONDS)
            changes.append((_post_capacity(sb, capacity), capacity))
        thread.join()
        if errors:
            raise errors[0]
        timeline = sb.readback("stats")["timeline"]["create"]
        timelines = _timelines(sb)
        share, total = _refused_share(sb)
        created, _span = _create_span(sb)
    finally:
        ctx.servers.stop(sb)
    if created != count:
        raise RuntimeError(f"{name} step: {created} of {count} jobs created")
    run = outcome[0]
    follows = [follow_seconds(timeline, second, capacity) for second, capacity in changes]
    labels = ("C -> C/4", "C/4 -> C")
    ctx.suite.add(
        Result.of_run(
            name,
            f"step C -> C/4 -> C ({STEP_SECONDS:g} s each), ceiling 4x C",
            run,
            count,
            None,
            "",
            extra={
                "note": ", ".join(
                    f"{lab} followed in {f if f is not None else 'never'} s"
                    for lab, f in zip(labels, follows, strict=True)
                )
                + f", 429s {share:.1%} of {total}",
                "timeline": timelines,
            },
        )
    )
    for label, follow in zip(labels, follows, strict=True):
        measured = follow if follow is not None else float("inf")
        _ratio_check(ctx, name, f"step {label} followed within (s)", measured, FOLLOW_TARGET_S, False)
    _ratio_check(ctx, name, "429 share over the steps", share, 0.03, False)


def hidden_capacity(ctx: Context) -> None:
    _capacity_runs(ctx, "hidden_capacity", _single(ctx, "capacity"), CEILINGS)
    _step_run(ctx, "hidden_capacity", _single(ctx, "step"))


def fleet_capacity(ctx: Context) -> None:
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("fleet_capacity needs PostgreSQL's binaries (apt-get install postgresql)")
    with run_cluster(bindir) as server:
        runner = _fleet(ctx, server)
        _capacity_runs(ctx, "fleet_capacity", runner, (4,))
        _step_run(ctx, "fleet_capacity", runner)


# --- bandwidth_bound -------------------------------------------------------------------------------

CORPUS: Final = ((2, 300 * MB), (4, 100 * MB), (10, 30 * MB), (20, 10 * MB), (50, 1 * MB), (200, 10 * KB))
BANDWIDTH: Final = 50 * MB


def _corpus(ctx: Context) -> tuple[Path, int]:
    root = ctx.work / "data" / "mixed"
    scale = 10 if ctx.quick else 1
    total = 0
    for count, size in CORPUS:
        size = max(10 * KB, size // scale)
        for i in range(count):
            path = root / f"{size}" / f"f{i:04d}.wav"
            if not path.exists():
                data.big_wav(path, size)
            total += size
    return root, total


def bandwidth_bound(ctx: Context) -> None:
    name = "bandwidth_bound"
    root, total = _corpus(ctx)
    files = sum(count for count, _ in CORPUS)
    plan = FaultPlan(s3_bandwidth_bytes_per_second=BANDWIDTH)
    sb = ctx.servers.sandbox(faults=plan)
    ledger = ctx.work / "bandwidth.db"
    try:
        run = slng_submit(ctx, [str(root)], sb.api_url, sb.api_key, ledger, concurrency=16)
    finally:
        ctx.servers.stop(sb)
    conn = sqlite3.connect(ledger)
    try:
        created, first, last = conn.execute(
            "SELECT COUNT(*), MIN(presigned_at), MAX(uploaded_at) FROM files WHERE state = 'created'"
        ).fetchone()
    finally:
        conn.close()
    if created != files:
        raise RuntimeError(f"bandwidth: {created} of {files} created")
    rate = total / (last - first)
    ratio = rate / BANDWIDTH
    ctx.suite.add(
        Result.of_run(
            name,
            f"{files} files, {total / 1e9:.2f} GB, 10 KB-{max(s for _, s in CORPUS) // MB} MB, c=16",
            run,
            files,
            rate / MB,
            "MB/s",
            ratio=ratio,
            ratio_to=f"B={BANDWIDTH // MB} MB/s",
            extra={"note": f"upload span {last - first:.1f} s (first presign to last upload)"},
        )
    )
    _ratio_check(ctx, name, "upload rate / B", ratio, 0.95, True)
