"""The scale-out benchmark: 1, 2 and 4 `work` processes on one PostgreSQL ledger over the same files.

Each worker count gets a fresh database on one throwaway cluster (tests/support/postgres.py) and a
fresh sandbox with 20 ms latency per call, so that a worker is latency-bound and more workers can
show it. Reported: files/s for the fleet (slowest worker's spawn to exit), files/s per worker, the
workers' client CPU per file, and the ledger's own cost per file: the CPU of the PostgreSQL server
(postmaster and every backend, live or exited) while the workers ran, divided by the files.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import psutil  # type: ignore[import-untyped]

from pipeline.sandbox import FaultPlan
from tests.bench.common import CEILING_FLAGS, Context, small_tree
from tests.bench.procs import Measured, clean_env, run_measured
from tests.bench.results import Result
from tests.bench.servers import RunningSandbox
from tests.support.postgres import create_database, drop_database, find_bindir, run_cluster

FLEET_WORKERS: Final = (1, 2, 4)
FLEET_CONCURRENCY: Final = 8  # per worker
FLEET_LATENCY_MS: Final = 20.0
CLI: Final = (sys.executable, "-m", "pipeline.cli.app")


def _server_cpu_s(postmaster: int) -> float:
    """CPU of the server so far: the postmaster, its exited children (reaped into it) and live ones."""
    proc = psutil.Process(postmaster)
    times = proc.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in proc.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += child_times.user + child_times.system
    return float(total)


def fleet_env(ctx: Context, sb: RunningSandbox, ledger_url: str) -> dict[str, str]:
    """The environment every process of a fleet shares: one sandbox, one PostgreSQL ledger."""
    return clean_env(
        {
            "SLNG_API_KEY": sb.api_key,
            "SLNG_BULK_API_URL": sb.api_url,
            "SLNG_BULK_LEDGER": ledger_url,
            "HOME": str(ctx.home),
        }
    )


def enqueue(ctx: Context, env: dict[str, str], manifest: Path) -> Measured:
    return run_measured([*CLI, "enqueue", str(manifest)], env=env, cwd=ctx.work, timeout=600).check()


def run_workers(ctx: Context, env: dict[str, str], workers: int, options: Sequence[str]) -> list[Measured]:
    """`workers` `work` processes at once, each with its own --host-name; each one's run measured."""
    commands = [
        [*CLI, "work", "--progress", "none", *options, "--host-name", f"bench{i}"] for i in range(workers)
    ]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(functools.partial(_run_worker, env=env, cwd=ctx.work), commands))


def _run_worker(argv: list[str], *, env: dict[str, str], cwd: Path) -> Measured:
    return run_measured(argv, env=env, cwd=cwd, timeout=1800).check()


def list_manifest(ctx: Context, name: str, root: Path, count: int) -> Path:
    """A CSV manifest of the first `count` files (sorted) under `root`."""
    files = sorted(root.rglob("*.wav"))[:count]
    path = ctx.work / "data" / f"{name}.csv"
    path.write_text("path\n" + "".join(f"{f}\n" for f in files), encoding="utf-8")
    return path


def fleet(ctx: Context) -> None:
    name = "fleet"
    count = ctx.size(1200, 300)
    manifest = list_manifest(ctx, "fleet", small_tree(ctx, "fleet", count, 1024), count)
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("the fleet benchmark needs PostgreSQL's binaries (apt-get install postgresql)")
    latency = {"latency": {"distribution": "fixed", "fixed_ms": FLEET_LATENCY_MS}}
    plan = FaultPlan.model_validate({"operations": {op: latency for op in ("presign", "put", "create")}})
    single_rate: float | None = None
    with run_cluster(bindir) as server:
        assert server.pid is not None
        for workers in FLEET_WORKERS:
            database = create_database(server)
            sb = ctx.servers.sandbox(faults=plan)
            try:
                env = fleet_env(ctx, sb, server.url_for(database))
                enqueued = enqueue(ctx, env, manifest)
                before = _server_cpu_s(server.pid)
                runs = run_workers(
                    ctx, env, workers, ["--concurrency", str(FLEET_CONCURRENCY), *CEILING_FLAGS]
                )
                ledger_ms = (_server_cpu_s(server.pid) - before) * 1000 / count
            finally:
                ctx.servers.stop(sb)
                drop_database(server, database)
            wall = max(run.wall_s for run in runs)
            rate = count / wall
            single_rate = single_rate or rate
            ctx.suite.add(
                Result(
                    name,
                    f"{workers} worker(s) x c={FLEET_CONCURRENCY} ({count} files, "
                    f"{FLEET_LATENCY_MS:g} ms/call)",
                    wall,
                    rate,
                    "files/s",
                    sum(run.cpu_s for run in runs) * 1000 / count,
                    max(run.max_rss_mb for run in runs),
                    ratio=rate / single_rate,
                    ratio_to="1 worker",
                    extra={
                        "files_per_s_per_worker": rate / workers,
                        "postgres_cpu_ms_per_file": ledger_ms,
                        "enqueue_s": enqueued.wall_s,
                        "enqueue_files_per_s": count / enqueued.wall_s,
                    },
                )
            )
