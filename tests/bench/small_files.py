"""Many small files: slng-bulk beside a client doing the same three requests per file, and the aws CLI.

Equal work: `baseline_three_step.py` (presign, PUT, create per file, nothing else) and slng-bulk run
against the same fresh server at the same concurrency, in alternating order, `ctx.repeats` rounds.
Twice: against the sandbox (its own S3), and against `lean_server.py`, which costs the server
side about a tenth of the sandbox's CPU, so that the client is what is measured. The aws CLI makes
one request per file (a PUT), so its row is a reference for the machine, not equal work.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from tests.bench.common import (
    Context,
    ServerCpu,
    equal_work_rounds,
    file_lists,
    ledger_stats,
    median,
    slng_submit,
    small_tree,
    spread,
)
from tests.bench.procs import Measured, clean_env, run_measured
from tests.bench.results import Result
from tests.bench.servers import RunningLean, RunningSandbox

SMALL_FILE_BYTES: Final = 10 * 1024
CONCURRENCY: Final = 32
CPU_TARGET_MS: Final = 1.5


Server = RunningSandbox | RunningLean


def equal_work(
    ctx: Context,
    label: str,
    start: Callable[[], Server],
    count: int,
    root: Path,
    concurrency: int = CONCURRENCY,
) -> tuple[Result, Result]:
    """Baseline and slng-bulk on the same fresh server per round; medians and per-round ratios."""
    lists = file_lists(ctx, f"small-{count}", root, count)
    tag = label.split()[0]
    runs = equal_work_rounds(
        ctx, start, lists, concurrency=concurrency, count=count, ledger_name=f"small-{tag}"
    )

    def result(side: str, variant: str, startup_s: float) -> Result:
        sample = runs[side]
        rates = [count / r.measured.wall_s for r in sample]
        in_run = [r.in_run_rate for r in sample if r.in_run_rate]
        return ctx.suite.add(
            Result.of_repeats(
                "small_files",
                variant,
                [r.measured for r in sample],
                count,
                rates,
                "files/s",
                server_cpu_s=[r.server_cpu_s for r in sample],
                startup_cpu_s=startup_s,
                extra={
                    "in_run_files_per_s": median(in_run) if in_run else None,
                    "spread": spread(rates),
                    "concurrency": concurrency,
                    "startup_cpu_s": startup_s,
                },
            )
        )

    base = result("baseline", f"3-step aiohttp baseline -> {label}", ctx.startup["baseline"])
    ours = result("slng-bulk", f"slng-bulk -> {label}", ctx.startup["slng-bulk"])
    base.ratio, base.ratio_to = 1.0, "baseline"
    pairs = list(zip(runs["baseline"], runs["slng-bulk"], strict=True))
    ratios = [b.measured.wall_s / o.measured.wall_s for b, o in pairs]
    ours.ratio, ours.ratio_to = median(ratios), "baseline"
    in_run_ratios = [o.in_run_rate / b.in_run_rate for b, o in pairs if o.in_run_rate and b.in_run_rate]
    if in_run_ratios:
        ours.extra["in_run_ratio_to_baseline"] = median(in_run_ratios)
        ours.extra["note"] = f"in-run {median(in_run_ratios):.2f}x baseline's in-run"
    return base, ours


def many_small_files(ctx: Context) -> None:
    name = "small_files"
    count = ctx.size(2000, 500)
    root = small_tree(ctx, "small", count, SMALL_FILE_BYTES)

    def sandbox() -> Server:
        return ctx.servers.sandbox()

    def lean() -> Server:
        return ctx.servers.lean()

    own = equal_work(ctx, "sandbox (own S3)", sandbox, count, root)
    bare = equal_work(ctx, "lean server", lean, count, root)
    for _base, ours in (own, bare):
        assert ours.ratio is not None and ours.run_cpu_ms_per_item is not None
        where = ours.variant.split("-> ", 1)[1]
        ctx.suite.figure(name, f"files/s vs equal-work baseline ({where})", ours.ratio)
        if "in_run_ratio_to_baseline" in ours.extra:
            ctx.suite.figure(
                name, f"in-run files/s vs baseline ({where})", ours.extra["in_run_ratio_to_baseline"]
            )
        ctx.suite.check(
            name,
            f"client CPU ms/file less start-up ({where})",
            ours.run_cpu_ms_per_item,
            f"<= {CPU_TARGET_MS}",
            ours.run_cpu_ms_per_item <= CPU_TARGET_MS,
        )
    aws_cli(ctx, count, root)


def aws_cli(ctx: Context, count: int, root: Path) -> None:
    """slng-bulk through the sandbox API onto LocalStack S3, beside `aws s3 cp` onto the same LocalStack."""
    name = "small_files"
    ls = ctx.servers.localstack()
    try:
        bucket = ls.create_bucket("slng-bench")
        manifest, _ = file_lists(ctx, f"small-{count}", root, count)
        aws_config = ctx.work / "aws-config"
        aws_config.write_text(
            f"[default]\nregion = {ls.region}\ns3 =\n  max_concurrent_requests = {CONCURRENCY}\n",
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
        ours_runs: list[tuple[Measured, float, float]] = []
        aws_runs: list[tuple[Measured, float]] = []
        for round_no in range(ctx.repeats):
            external = ctx.servers.sandbox(localstack_bucket=bucket)
            try:
                ledger = ctx.work / f"small-localstack-{round_no}.db"
                with ServerCpu(external.pid, ls.pid) as both, ServerCpu(ls.pid) as only_ls:
                    run = slng_submit(
                        ctx,
                        [str(manifest)],
                        external.api_url,
                        external.api_key,
                        ledger,
                        concurrency=CONCURRENCY,
                    )
                stats = ledger_stats(ledger)
                if stats["created"] != count:
                    raise RuntimeError(
                        f"LocalStack: {stats['created']} of {count} created: {stats['states']}"
                    )
                ours_runs.append((run, both.used_s, only_ls.used_s))
            finally:
                ctx.servers.stop(external)
            prefix = f"awscli-{round_no}/"
            with ServerCpu(ls.pid) as cpu:
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
                        f"s3://{bucket}/{prefix}",
                    ],
                    env=env,
                    cwd=ctx.work,
                    timeout=1800,
                ).check()
            listed = sum(
                len(page.get("Contents", []))
                for page in ls.client()
                .get_paginator("list_objects_v2")
                .paginate(Bucket=bucket, Prefix=prefix)
            )
            if listed != count:
                raise RuntimeError(f"aws s3 cp stored {listed} of {count} objects")
            aws_runs.append((aws, cpu.used_s))
    finally:
        ctx.servers.stop_localstack()
    aws_rates = [count / m.wall_s for m, _ in aws_runs]
    aws_result = ctx.suite.add(
        Result.of_repeats(
            name,
            f"aws s3 cp --recursive -> LocalStack (max_concurrent_requests={CONCURRENCY}; 1 request/file)",
            [m for m, _ in aws_runs],
            count,
            aws_rates,
            "files/s",
            server_cpu_s=[c for _, c in aws_runs],
            ratio=1.0,
            ratio_to="aws cli",
            extra={"spread": spread(aws_rates)},
        )
    )
    rates = [count / m.wall_s for m, _, _ in ours_runs]
    ratios = [
        (count / o.wall_s) / (count / a.wall_s) for (o, _, _), (a, _) in zip(ours_runs, aws_runs, strict=True)
    ]
    ours = ctx.suite.add(
        Result.of_repeats(
            name,
            "slng-bulk -> sandbox API + LocalStack S3 (3 requests/file)",
            [m for m, _, _ in ours_runs],
            count,
            rates,
            "files/s",
            server_cpu_s=[c for _, c, _ in ours_runs],
            startup_cpu_s=ctx.startup.get("slng-bulk", 0.0),
            ratio=median(ratios),
            ratio_to="aws cli",
            extra={
                "localstack_cpu_ms_per_file": median([c for _, _, c in ours_runs]) * 1000 / count,
                "spread": spread(rates),
            },
        )
    )
    assert aws_result.rate and ours.ratio is not None
    ctx.suite.check(name, "files/s vs aws cli (LocalStack)", ours.ratio, ">= 1.5x", ours.ratio >= 1.5)
