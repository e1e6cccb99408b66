"""Chaos: the same run with and without a mix of faults; exactly-once is checked on the server."""

from __future__ import annotations

from typing import Any, Final

from pipeline.sandbox import FaultPlan
from tests.bench.common import (
    Context,
    ServerCpu,
    in_run_rate,
    ledger_stats,
    slng_submit,
    small_tree,
)
from tests.bench.procs import Measured
from tests.bench.results import Result

CONCURRENCY: Final = 32


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


def summary_tail(run: Measured, lines: int = 20) -> list[str]:
    """The end of the CLI's stderr: its run summary (counts, retries by class)."""
    return run.stderr.strip().splitlines()[-lines:]


def chaos(ctx: Context) -> None:
    name = "chaos"
    count = ctx.size(2000, 300)
    root = small_tree(ctx, "chaos", count, 10 * 1024)
    results: dict[str, Result] = {}
    for variant, plan in (("no faults", FaultPlan()), ("chaos mix", chaos_plan())):
        sb = ctx.servers.sandbox(faults=plan)
        try:
            ledger = ctx.work / f"{name}-{variant.replace(' ', '-')}.db"
            with ServerCpu(sb.pid) as cpu:
                run = slng_submit(ctx, [str(root)], sb.api_url, sb.api_key, ledger, concurrency=CONCURRENCY)
            stats = ledger_stats(ledger)
            jobs = sb.readback("jobs")
            injected = sb.readback("stats")["injected"]
        finally:
            ctx.servers.stop(sb)
        creates = [a["job_id"] for a in jobs["attempts"] if a["created"]]
        if stats["created"] != count or len(creates) != len(set(creates)) or len(jobs["jobs"]) != count:
            raise RuntimeError(f"{variant}: not exactly once: {stats['states']}, {len(creates)} creates")
        results[variant] = ctx.suite.add(
            Result.of_run(
                name,
                f"slng-bulk c={CONCURRENCY}, {variant} ({count} files; in-run)",
                run,
                count,
                in_run_rate(stats),
                "files/s",
                server_cpu_ms_per_item=cpu.used_s * 1000 / count,
                extra={
                    "whole_run_files_per_s": count / run.wall_s,
                    "injected": injected,
                    "client_summary": summary_tail(run),
                    "mean_step_ms": stats["step_ms"],
                },
            )
        )
    clean, faulty = results["no faults"], results["chaos mix"]
    assert clean.rate and faulty.rate
    clean.ratio, clean.ratio_to = 1.0, "no faults"
    faulty.ratio, faulty.ratio_to = faulty.rate / clean.rate, "no faults"
    ctx.suite.check(name, "chaos files/s vs no faults (in-run)", faulty.ratio, ">= 0.7x", faulty.ratio >= 0.7)
