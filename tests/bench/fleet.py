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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import psutil  # type: ignore[import-untyped]

from pipeline.sandbox import FaultPlan
from tests.bench.common import RATE_CEILING, Context, small_tree
from tests.bench.procs import Measured, clean_env, run_measured
from tests.bench.results import Result
from tests.support.postgres import create_database, drop_database, find_bindir, run_cluster

FLEET_WORKERS: Final = (1, 2, 4)
FLEET_CONCURRENCY: Final = 8  # per worker
FLEET_LATENCY_MS: Final = 20.0


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
                env = clean_env(
                    {
                        "SLNG_API_KEY": sb.api_key,
                        "SLNG_BULK_API_URL": sb.api_url,
                        "SLNG_BULK_LEDGER": server.url_for(database),
                        "HOME": str(ctx.home),
                    }
                )
                argv = [sys.executable, "-m", "pipeline.cli.app"]
                enqueue = run_measured(
                    [*argv, "enqueue", str(manifest)], env=env, cwd=ctx.work, timeout=600
                ).check()
                work = [
                    *argv,
                    "work",
                    "--concurrency",
                    str(FLEET_CONCURRENCY),
                    "--progress",
                    "none",
                    "--max-create-rps",
                    str(RATE_CEILING),
                    "--max-presign-rps",
                    str(RATE_CEILING),
                    "--max-read-rps",
                    str(RATE_CEILING),
                ]
                before = _server_cpu_s(server.pid)
                commands = [[*work, "--host-name", f"bench{i}"] for i in range(workers)]
                with ThreadPoolExecutor(workers) as pool:
                    runs: list[Measured] = list(
                        pool.map(functools.partial(_run_worker, env=env, cwd=ctx.work), commands)
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
                        "enqueue_s": enqueue.wall_s,
                        "enqueue_files_per_s": count / enqueue.wall_s,
                    },
                )
            )
