"""The six benchmarks. Each measures whole client runs beside a baseline measured in the same run.

Every `slng-bulk` run is a fresh subprocess with a fresh ledger, `--progress none`, and request-rate
ceilings (`--max-create-rps`, `--max-presign-rps`, `--max-read-rps`) set to RATE_CEILING so the
client's own rate limits never bind: these benchmarks measure the pipeline, not its politeness.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pipeline.api.models import MAX_FILE_BYTES
from pipeline.sandbox import FaultPlan
from tests.bench import data
from tests.bench.procs import REPO_ROOT, Measured, clean_env, process_cpu_s, run_measured
from tests.bench.results import Result, Suite
from tests.bench.servers import RunningSandbox, Servers
from tests.support.localstack import LocalStackS3

RATE_CEILING: Final = 100_000
SMALL_FILE_BYTES: Final = 10 * 1024
SMALL_CONCURRENCY: Final = 32
LATENCY_MS: Final = 50.0
LATENCY_CONCURRENCIES: Final = (8, 32, 128)
CHAOS_CONCURRENCY: Final = 32
MiB: Final = 1024 * 1024


@dataclass
class Context:
    quick: bool
    work: Path
    servers: Servers
    suite: Suite

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @property
    def home(self) -> Path:
        """HOME for client runs: no user config file (slng-bulk's or aws's) can leak in."""
        path = self.work / "home"
        path.mkdir(exist_ok=True)
        return path


# --- helpers ---------------------------------------------------------------------------------------


def slng_submit(
    ctx: Context,
    sources: list[str],
    sb: RunningSandbox,
    ledger: Path,
    *,
    concurrency: int,
    extra: list[str] | None = None,
    timeout: float = 1800,
    ok: tuple[int, ...] = (0,),
) -> Measured:
    argv = [
        sys.executable,
        "-m",
        "pipeline.cli.app",
        "submit",
        *sources,
        "--api-url",
        sb.api_url,
        "--ledger",
        str(ledger),
        "--concurrency",
        str(concurrency),
        "--progress",
        "none",
        "--max-create-rps",
        str(RATE_CEILING),
        "--max-presign-rps",
        str(RATE_CEILING),
        "--max-read-rps",
        str(RATE_CEILING),
        *(extra or []),
    ]
    env = clean_env({"SLNG_API_KEY": sb.api_key, "HOME": str(ctx.home)})
    return run_measured(argv, env=env, cwd=ctx.work, timeout=timeout).check(*ok)


def python_snippet(ctx: Context, code: str, *args: str, timeout: float = 600) -> Measured:
    env = clean_env({"HOME": str(ctx.home)})
    return run_measured([sys.executable, "-c", code, *args], env=env, cwd=ctx.work, timeout=timeout).check()


def ledger_stats(ledger: Path) -> dict[str, Any]:
    conn = sqlite3.connect(ledger)
    try:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall())
        first, last, created = conn.execute(
            "SELECT MIN(admitted_at), MAX(created_at), COUNT(created_at) FROM files WHERE state = 'created'"
        ).fetchone()
        upload = conn.execute(
            "SELECT SUM(uploaded_at - presigned_at) FROM files WHERE uploaded_at IS NOT NULL"
        ).fetchone()[0]
        steps = conn.execute(
            "SELECT AVG(presigned_at - admitted_at), AVG(uploaded_at - presigned_at),"
            " AVG(create_sent_at - uploaded_at), AVG(created_at - create_sent_at),"
            " AVG(created_at - admitted_at) FROM files WHERE state = 'created'"
        ).fetchone()
    finally:
        conn.close()
    span = (last - first) if first is not None and last is not None else None
    names = (
        "admit_to_presigned",
        "presigned_to_uploaded",
        "uploaded_to_create_sent",
        "create_sent_to_created",
    )
    step_ms = {k: round(v * 1000, 1) for k, v in zip((*names, "total"), steps, strict=True) if v is not None}
    return {
        "states": states,
        "created": created,
        "in_run_span_s": span,
        "upload_seconds": upload,
        "step_ms": step_ms,
    }


def in_run_rate(stats: dict[str, Any]) -> float | None:
    """Files created per second between the first admission and the last creation (no start-up)."""
    span = stats["in_run_span_s"]
    return stats["created"] / span if span else None


def small_tree(ctx: Context, name: str, count: int, size: int = SMALL_FILE_BYTES) -> Path:
    root = ctx.work / "data" / name
    if not root.exists():
        data.small_wavs(root, count, size)
    return root


def list_manifest(ctx: Context, name: str, root: Path, count: int) -> Path:
    """A CSV manifest of the first `count` files (sorted) under `root`."""
    files = sorted(root.rglob("*.wav"))[:count]
    path = ctx.work / "data" / f"{name}.csv"
    path.write_text("path\n" + "".join(f"{f}\n" for f in files), encoding="utf-8")
    return path


def summary_tail(run: Measured, lines: int = 20) -> list[str]:
    """The end of the CLI's stderr: its run summary (counts, retries by class)."""
    return run.stderr.strip().splitlines()[-lines:]


def sandbox_requests(sb: RunningSandbox) -> int:
    stats = sb.readback("stats")
    return sum(int(op["total"]) for op in stats["requests"].values())


# --- 1. many small files ---------------------------------------------------------------------------


def many_small_files(ctx: Context) -> None:
    name = "small_files"
    count = ctx.size(2000, 500)
    root = small_tree(ctx, "small", count)
    ls = ctx.servers.localstack()
    bucket = ls.create_bucket("slng-bench")
    external = ctx.servers.sandbox(localstack_bucket=bucket)
    own = ctx.servers.sandbox()
    try:
        _small_files_runs(ctx, name, count, root, ls, bucket, external, own)
    finally:
        ctx.servers.stop(external)
        ctx.servers.stop(own)
        ctx.servers.stop_localstack()


def _small_files_runs(
    ctx: Context,
    name: str,
    count: int,
    root: Path,
    ls: LocalStackS3,
    bucket: str,
    external: RunningSandbox,
    own: RunningSandbox,
) -> None:

    def ours(sb: RunningSandbox, variant: str) -> Result:
        ledger = ctx.work / f"{name}-{variant}.db"
        before = process_cpu_s(sb.pid), process_cpu_s(ls.pid)
        run = slng_submit(ctx, [str(root)], sb, ledger, concurrency=SMALL_CONCURRENCY)
        servers_ms = {
            "sandbox_cpu_ms_per_file": (process_cpu_s(sb.pid) - before[0]) * 1000 / count,
            "localstack_cpu_ms_per_file": (process_cpu_s(ls.pid) - before[1]) * 1000 / count,
        }
        stats = ledger_stats(ledger)
        if stats["created"] != count:
            raise RuntimeError(f"{variant}: {stats['created']} of {count} created: {stats['states']}")
        return ctx.suite.add(
            Result(
                name,
                variant,
                run.wall_s,
                count / run.wall_s,
                "files/s",
                run.cpu_s * 1000 / count,
                run.max_rss_mb,
                extra={
                    "in_run_files_per_s": in_run_rate(stats),
                    "concurrency": SMALL_CONCURRENCY,
                    **servers_ms,
                },
            )
        )

    localstack_run = ours(external, "slng-bulk -> sandbox API + LocalStack S3")

    aws_config = ctx.work / "aws-config"
    aws_config.write_text(
        f"[default]\nregion = {ls.region}\ns3 =\n  max_concurrent_requests = {SMALL_CONCURRENCY}\n",
        encoding="utf-8",
    )
    env = clean_env(
        {
            "HOME": str(ctx.home),
            "AWS_ACCESS_KEY_ID": ls.access_key,
            "AWS_SECRET_ACCESS_KEY": ls.secret_key,
            "AWS_DEFAULT_REGION": ls.region,
            "AWS_CONFIG_FILE": str(aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(ctx.work / "aws-no-credentials"),
        }
    )
    env.pop("PYTHONPATH", None)
    ls_before = process_cpu_s(ls.pid)
    aws = run_measured(
        [
            "aws",
            "--endpoint-url",
            ls.endpoint,
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
            str(root),
            f"s3://{bucket}/awscli/",
        ],
        env=env,
        cwd=ctx.work,
        timeout=1800,
    ).check()
    listed = 0
    for page in ls.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="awscli/"):
        listed += len(page.get("Contents", []))
    if listed != count:
        raise RuntimeError(f"aws s3 cp stored {listed} of {count} objects")
    aws_result = ctx.suite.add(
        Result(
            name,
            f"aws s3 cp --recursive -> LocalStack (max_concurrent_requests={SMALL_CONCURRENCY})",
            aws.wall_s,
            count / aws.wall_s,
            "files/s",
            aws.cpu_s * 1000 / count,
            aws.max_rss_mb,
            extra={"localstack_cpu_ms_per_file": (process_cpu_s(ls.pid) - ls_before) * 1000 / count},
        )
    )
    assert localstack_run.rate is not None and aws_result.rate is not None
    localstack_run.ratio, localstack_run.ratio_to = localstack_run.rate / aws_result.rate, "aws cli"
    aws_result.ratio, aws_result.ratio_to = 1.0, "aws cli"
    own_run = ours(own, "slng-bulk -> sandbox API + sandbox S3")
    assert own_run.rate is not None
    own_run.ratio, own_run.ratio_to = own_run.rate / aws_result.rate, "aws cli"
    ctx.suite.check(
        name, "files/s vs aws cli (LocalStack)", localstack_run.ratio, ">= 1.5x", localstack_run.ratio >= 1.5
    )
    for run in (localstack_run, own_run):
        assert run.cpu_ms_per_item is not None
        ctx.suite.check(
            name,
            f"client CPU ms/file ({'LocalStack' if run is localstack_run else 'sandbox S3'})",
            run.cpu_ms_per_item,
            "<= 1.5",
            run.cpu_ms_per_item <= 1.5,
        )


# --- 2. latency-bound ------------------------------------------------------------------------------


def latency_plan() -> FaultPlan:
    latency = {"latency": {"distribution": "fixed", "fixed_ms": LATENCY_MS}}
    return FaultPlan.model_validate({"operations": {op: latency for op in ("presign", "put", "create")}})


def latency_bound(ctx: Context) -> None:
    name = "latency_50ms"
    per_file_s = 3 * LATENCY_MS / 1000
    seconds = ctx.size(8, 3)
    biggest = max(LATENCY_CONCURRENCIES)
    pool = small_tree(ctx, "latency", max(200, int(biggest / per_file_s * seconds)), 1024)
    for concurrency in LATENCY_CONCURRENCIES:
        ideal = concurrency / per_file_s
        count = max(150, int(ideal * seconds))
        manifest = list_manifest(ctx, f"latency-{concurrency}", pool, count)
        sb = ctx.servers.sandbox(faults=latency_plan())
        try:
            ledger = ctx.work / f"{name}-{concurrency}.db"
            before = process_cpu_s(sb.pid)
            run = slng_submit(ctx, [str(manifest)], sb, ledger, concurrency=concurrency)
            sandbox_ms = (process_cpu_s(sb.pid) - before) * 1000 / count
            stats = ledger_stats(ledger)
        finally:
            ctx.servers.stop(sb)
        if stats["created"] != count:
            raise RuntimeError(f"c={concurrency}: {stats['created']} of {count} created: {stats['states']}")
        rate = in_run_rate(stats) or 0.0
        ctx.suite.add(
            Result(
                name,
                f"slng-bulk c={concurrency} ({count} files; in-run)",
                run.wall_s,
                rate,
                "files/s",
                run.cpu_s * 1000 / count,
                run.max_rss_mb,
                ratio=rate / ideal,
                ratio_to=f"ideal {ideal:.0f}/s",
                extra={
                    "whole_run_files_per_s": count / run.wall_s,
                    "ideal_files_per_s": ideal,
                    "sandbox_cpu_ms_per_file": sandbox_ms,
                    "mean_step_ms": stats["step_ms"],
                },
            )
        )
        ctx.suite.check(
            name, f"c={concurrency}: in-run files/s vs ideal", rate / ideal, ">= 0.90", rate >= 0.9 * ideal
        )


# --- 3. one large file -----------------------------------------------------------------------------


def presign_put(sb: RunningSandbox, key: str) -> str:
    from pipeline.sandbox.signing import make_s3_client

    client = make_s3_client(sb.s3_url, sb.config.s3_credentials)
    url: str = client.generate_presigned_url(
        "put_object",
        Params={"Bucket": sb.config.bucket, "Key": key, "ContentType": "application/octet-stream"},
        ExpiresIn=3600,
    )
    return url


def large_file(ctx: Context) -> None:
    name = "large_file"
    # 1 GiB is over the API's 1 GB (10^9 bytes) cap: the full run sends the largest file allowed.
    size = ctx.size(MAX_FILE_BYTES, 128 * MiB)
    folder = ctx.work / "data" / "large"
    path = data.big_wav(folder / "big.wav", size)
    sb = ctx.servers.sandbox()
    try:
        url = presign_put(sb, "bench/curl-big.wav")
        curl = run_measured(
            [
                "curl",
                "-sS",
                "--fail",
                "--noproxy",
                "*",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Content-Type: application/octet-stream",
                "-H",
                "Expect:",
                "-T",
                str(path),
                url,
            ],
            env=clean_env({"HOME": str(ctx.home)}),
            cwd=ctx.work,
            timeout=1800,
        ).check()
        if curl.stdout.strip() != "200":
            raise RuntimeError(f"curl PUT answered {curl.stdout!r}")
        ledger = ctx.work / f"{name}.db"
        run = slng_submit(ctx, [str(folder)], sb, ledger, concurrency=8)
        stats = ledger_stats(ledger)
    finally:
        ctx.servers.stop(sb)
    mb = size / 1e6
    curl_result = ctx.suite.add(
        Result(
            name,
            f"curl -T presigned PUT ({size / 1e6:,.0f} MB)",
            curl.wall_s,
            mb / curl.wall_s,
            "MB/s",
            peak_rss_mb=curl.max_rss_mb,
            ratio=1.0,
            ratio_to="curl",
        )
    )
    assert curl_result.rate is not None
    ours = ctx.suite.add(
        Result(
            name,
            f"slng-bulk ({size / 1e6:,.0f} MB)",
            run.wall_s,
            mb / run.wall_s,
            "MB/s",
            peak_rss_mb=run.max_rss_mb,
            extra={
                "upload_only_mb_per_s": mb / stats["upload_seconds"] if stats["upload_seconds"] else None,
                "cpu_s": run.cpu_s,
                "mean_step_ms": stats["step_ms"],
            },
        )
    )
    assert ours.rate is not None
    ours.ratio, ours.ratio_to = ours.rate / curl_result.rate, "curl"
    ctx.suite.check(name, "MB/s vs curl", ours.ratio, ">= 0.9x", ours.ratio >= 0.9)
    ctx.suite.check(name, "slng-bulk peak RSS MB", run.max_rss_mb, "< 100", run.max_rss_mb < 100)


# --- 4. huge manifest ------------------------------------------------------------------------------

BASELINE_MANIFEST = """
import csv, os, sys
ok = bad = 0
with open(sys.argv[1], newline="") as fh:
    reader = csv.reader(fh)
    next(reader)
    for row in reader:
        try:
            os.stat(row[0])
            ok += 1
        except OSError:
            bad += 1
print(ok, bad)
"""


def huge_manifest(ctx: Context) -> None:
    name = "huge_manifest"
    rows = ctx.size(1_000_000, 100_000)
    audio = small_tree(ctx, "manifest-audio", 64, 4096)
    targets = sorted(audio.rglob("*.wav"))
    manifest = data.manifest(ctx.work / "data" / "huge.csv", rows, targets, bad_first_row=True)
    startup = run_measured(
        [sys.executable, "-m", "pipeline.cli.app", "--version"],
        env=clean_env({"HOME": str(ctx.home)}),
        cwd=ctx.work,
        timeout=120,
    ).check()
    ctx.suite.add(
        Result(
            name,
            "slng-bulk --version (interpreter + CLI import only)",
            startup.wall_s,
            peak_rss_mb=startup.max_rss_mb,
        )
    )
    baseline = python_snippet(ctx, BASELINE_MANIFEST, str(manifest))
    base = ctx.suite.add(
        Result(
            name,
            f"stdlib csv.reader + os.stat per row ({rows:,} rows)",
            baseline.wall_s,
            rows / baseline.wall_s,
            "rows/s",
            baseline.cpu_s * 1000 / rows,
            baseline.max_rss_mb,
            ratio=1.0,
            ratio_to="stdlib",
        )
    )
    argv = [
        sys.executable,
        "-m",
        "pipeline.cli.app",
        "submit",
        str(manifest),
        "--dry-run",
        "--ledger",
        str(ctx.work / f"{name}.db"),
    ]
    run = run_measured(
        argv,
        env=clean_env({"HOME": str(ctx.home)}),
        cwd=ctx.work,
        timeout=1800,
        watch_stderr={"first_rejected": b"rejected:"},
    ).check(3)
    if f"{rows - 1} valid files, 1 rejected rows" not in run.stdout:
        raise RuntimeError(f"unexpected dry-run summary: {run.stdout!r}")
    first = run.marks.get("first_rejected", float("nan"))
    assert base.rate is not None
    ours = ctx.suite.add(
        Result(
            name,
            f"slng-bulk submit --dry-run ({rows:,} rows)",
            run.wall_s,
            rows / run.wall_s,
            "rows/s",
            run.cpu_s * 1000 / rows,
            run.max_rss_mb,
            extra={"first_row_s_from_spawn": first},
        )
    )
    assert ours.rate is not None
    ours.ratio, ours.ratio_to = ours.rate / base.rate, "stdlib"
    ctx.suite.check(name, "rows/s", ours.rate, ">= 50,000", ours.rate >= 50_000)
    ctx.suite.check(name, "first row processed, s from spawn", first, "<= 1.0", first <= 1.0)
    ctx.suite.check(name, "peak RSS MB", run.max_rss_mb, "< 150", run.max_rss_mb < 150)


# --- 5. rerun of a finished ledger -----------------------------------------------------------------

BASELINE_WALK = """
import os, sys
n = 0
for folder, _dirs, files in os.walk(sys.argv[1]):
    for name in files:
        os.stat(os.path.join(folder, name))
        n += 1
print(n)
"""


def rerun_finished(ctx: Context) -> None:
    name = "rerun_finished"
    count = ctx.size(100_000, 20_000)
    root = small_tree(ctx, "rerun", count, 256)
    ledger = ctx.work / f"{name}.db"
    populate = run_measured(
        [sys.executable, "-m", "tests.bench.populate_ledger", str(ledger), str(root)],
        env=clean_env({"HOME": str(ctx.home)}),
        cwd=ctx.work,
        timeout=1800,
    ).check()
    if f"populated {count}" not in populate.stdout:
        raise RuntimeError(f"populate: {populate.stdout!r}")
    ctx.suite.add(
        Result(
            name,
            f"populate {count:,} created rows via Ledger API (admit, mark_presigned, mark_created)",
            populate.wall_s,
            count / populate.wall_s,
            "rows/s",
            populate.cpu_s * 1000 / count,
            populate.max_rss_mb,
        )
    )
    baseline = python_snippet(ctx, BASELINE_WALK, str(root))
    base = ctx.suite.add(
        Result(
            name,
            f"stdlib os.walk + os.stat ({count:,} files)",
            baseline.wall_s,
            count / baseline.wall_s,
            "files/s",
            baseline.cpu_s * 1000 / count,
            baseline.max_rss_mb,
        )
    )
    sb = ctx.servers.sandbox()
    try:
        run = slng_submit(ctx, [str(root)], sb, ledger, concurrency=32, extra=["--error-on-nothing"], ok=(7,))
        requests = sandbox_requests(sb)
    finally:
        ctx.servers.stop(sb)
    if requests:
        raise RuntimeError(f"a rerun with nothing to do sent {requests} requests")
    assert base.rate is not None
    ours = ctx.suite.add(
        Result(
            name,
            f"slng-bulk rerun, nothing to do ({count:,} files)",
            run.wall_s,
            count / run.wall_s,
            "files/s",
            run.cpu_s * 1000 / count,
            run.max_rss_mb,
            extra={"api_requests": requests},
        )
    )
    assert ours.rate is not None
    ours.ratio, ours.ratio_to = ours.rate / base.rate, "os.walk"
    ctx.suite.check(name, f"rerun wall s ({count:,} done)", run.wall_s, "< 5", run.wall_s < 5)


# --- 6. chaos --------------------------------------------------------------------------------------


def chaos_plan(seed: int = 11) -> FaultPlan:
    def errors() -> list[dict[str, Any]]:
        five_xx = [{"status": s, "probability": 0.05 / 4} for s in (500, 502, 503, 504)]
        return [{"status": 429, "probability": 0.03, "retry_after": 1}, *five_xx]

    operations: dict[str, Any] = {op: {"errors": errors()} for op in ("presign", "put", "create", "get")}
    operations["put"]["reset"] = {"after_bytes": 4096, "probability": 0.02}
    operations["create"]["lost_response"] = {"probability": 0.01}
    return FaultPlan.model_validate(
        {"seed": seed, "operations": operations, "short_expiry": {"expires_in": 2, "fraction": 0.05}}
    )


def chaos(ctx: Context) -> None:
    name = "chaos"
    count = ctx.size(2000, 300)
    root = small_tree(ctx, "chaos", count)
    results: dict[str, Result] = {}
    for variant, plan in (("no faults", FaultPlan()), ("chaos mix", chaos_plan())):
        sb = ctx.servers.sandbox(faults=plan)
        try:
            ledger = ctx.work / f"{name}-{variant.replace(' ', '-')}.db"
            before = process_cpu_s(sb.pid)
            run = slng_submit(ctx, [str(root)], sb, ledger, concurrency=CHAOS_CONCURRENCY)
            sandbox_ms = (process_cpu_s(sb.pid) - before) * 1000 / count
            stats = ledger_stats(ledger)
            jobs = sb.readback("jobs")
            injected = sb.readback("stats")["injected"]
        finally:
            ctx.servers.stop(sb)
        creates = [a["job_id"] for a in jobs["attempts"] if a["created"]]
        if stats["created"] != count or len(creates) != len(set(creates)) or len(jobs["jobs"]) != count:
            raise RuntimeError(f"{variant}: not exactly once: {stats['states']}, {len(creates)} creates")
        results[variant] = ctx.suite.add(
            Result(
                name,
                f"slng-bulk c={CHAOS_CONCURRENCY}, {variant} ({count} files; in-run)",
                run.wall_s,
                in_run_rate(stats),
                "files/s",
                run.cpu_s * 1000 / count,
                run.max_rss_mb,
                extra={
                    "whole_run_files_per_s": count / run.wall_s,
                    "injected": injected,
                    "client_summary": summary_tail(run),
                    "sandbox_cpu_ms_per_file": sandbox_ms,
                    "mean_step_ms": stats["step_ms"],
                },
            )
        )
    clean, faulty = results["no faults"], results["chaos mix"]
    assert clean.rate and faulty.rate
    clean.ratio, clean.ratio_to = 1.0, "no faults"
    faulty.ratio, faulty.ratio_to = faulty.rate / clean.rate, "no faults"
    ctx.suite.check(name, "chaos files/s vs no faults (in-run)", faulty.ratio, ">= 0.7x", faulty.ratio >= 0.7)


def _fleet(ctx: Context) -> None:
    from tests.bench.fleet import fleet  # its own module: it imports this one

    fleet(ctx)


SCENARIOS: Final[dict[str, Callable[[Context], None]]] = {
    "small_files": many_small_files,
    "latency": latency_bound,
    "large_file": large_file,
    "manifest": huge_manifest,
    "rerun": rerun_finished,
    "chaos": chaos,
    "fleet": _fleet,
}

__all__ = ["REPO_ROOT", "SCENARIOS", "Context"]
