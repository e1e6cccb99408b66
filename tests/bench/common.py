"""What every scenario shares: the run context, the client command lines, ledger read-back, repeats.

Every `slng-bulk` run is a fresh subprocess with a fresh ledger, `--progress none`, and request-rate
ceilings (`--max-create-rps`, `--max-presign-rps`, `--max-read-rps`) set to RATE_CEILING so the
client's own rate limits never bind: these benchmarks measure the pipeline, not its politeness.

The machine is shared (2 cores, other jobs running), so a figure is never compared with one taken
at another time: each comparison runs its two sides back to back, `repeats` times, interleaved
(A B A B ...), and reports the median of each side and the median of the per-round ratios.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil  # type: ignore[import-untyped]  # the test extra has no stubs for it

from tests.bench import data
from tests.bench.procs import Measured, clean_env, run_measured
from tests.bench.results import Suite
from tests.bench.servers import RunningLean, RunningSandbox, Servers

RATE_CEILING: Final = 100_000
# every client request-rate ceiling at RATE_CEILING: for `submit` and for `work`
CEILING_FLAGS: Final = tuple(
    arg
    for flag in ("--max-create-rps", "--max-presign-rps", "--max-read-rps")
    for arg in (flag, str(RATE_CEILING))
)
MiB: Final = 1024 * 1024
_BASELINE_DONE: Final = re.compile(r"done (\d+) in ([0-9.]+) s")


@dataclass
class Context:
    quick: bool
    work: Path
    servers: Servers
    suite: Suite
    profile_dir: Path | None = None  # --profile: py-spy records slng-bulk runs here
    startup: dict[str, float] = field(default_factory=dict)  # kind -> CPU s of a run with nothing to do

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @property
    def repeats(self) -> int:
        return 1 if self.quick else 3

    @property
    def home(self) -> Path:
        """HOME for client runs: no user config file (slng-bulk's or aws's) can leak in."""
        path = self.work / "home"
        path.mkdir(exist_ok=True)
        return path


# --- client command lines --------------------------------------------------------------------------


def slng_argv(
    sources: Sequence[str], api_url: str, ledger: Path, concurrency: int, extra: Sequence[str] = ()
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.cli.app",
        "submit",
        *sources,
        "--api-url",
        api_url,
        "--ledger",
        str(ledger),
        "--concurrency",
        str(concurrency),
        "--progress",
        "none",
        *CEILING_FLAGS,
        *extra,
    ]


def slng_submit(
    ctx: Context,
    sources: Sequence[str],
    api_url: str,
    api_key: str,
    ledger: Path,
    *,
    concurrency: int,
    extra: Sequence[str] = (),
    timeout: float = 1800,
    ok: tuple[int, ...] = (0,),
    env_extra: dict[str, str] | None = None,
) -> Measured:
    argv = slng_argv(sources, api_url, ledger, concurrency, extra)
    if ctx.profile_dir is not None:
        ctx.profile_dir.mkdir(parents=True, exist_ok=True)
        out = ctx.profile_dir / f"{ledger.stem}.txt"
        argv = ["py-spy", "record", "-r", "250", "--format", "raw", "-o", str(out), "--", *argv]
    env = clean_env({"SLNG_API_KEY": api_key, "HOME": str(ctx.home), **(env_extra or {})})
    return run_measured(argv, env=env, cwd=ctx.work, timeout=timeout).check(*ok)


def baseline_three_step(
    ctx: Context, paths_file: Path, api_url: str, api_key: str, *, concurrency: int, loop: str = "asyncio"
) -> Measured:
    """The equal-work baseline (`baseline_three_step.py`): presign, PUT, create per file, no extras."""
    argv = [
        sys.executable,
        "-m",
        "tests.bench.baseline_three_step",
        str(paths_file),
        "--api-url",
        api_url,
        "--concurrency",
        str(concurrency),
        "--loop",
        loop,
    ]
    env = clean_env({"SLNG_API_KEY": api_key, "HOME": str(ctx.home)})
    return run_measured(argv, env=env, cwd=ctx.work, timeout=1800).check()


def baseline_in_run_rate(run: Measured) -> float | None:
    """The baseline's own in-run rate (it prints "done N in S s": first request to last answer)."""
    match = _BASELINE_DONE.search(run.stdout)
    return int(match.group(1)) / float(match.group(2)) if match and float(match.group(2)) > 0 else None


def run_side(
    ctx: Context,
    side: str,
    lists: tuple[Path, Path],
    api_url: str,
    api_key: str,
    ledger: Path,
    *,
    concurrency: int,
    count: int,
) -> tuple[Measured, float | None]:
    """One round's run of one side of an equal-work comparison: the process measured and its in-run
    rate. `lists` is (CSV manifest, plain path list) of the same files; slng-bulk must create all
    `count` jobs (its ledger is read back), or the figure would flatter it."""
    manifest, plain = lists
    if side == "baseline":
        run = baseline_three_step(ctx, plain, api_url, api_key, concurrency=concurrency)
        return run, baseline_in_run_rate(run)
    run = slng_submit(ctx, [str(manifest)], api_url, api_key, ledger, concurrency=concurrency)
    stats = ledger_stats(ledger)
    if stats["created"] != count:
        raise RuntimeError(f"{ledger.stem}: {stats['created']} of {count} created: {stats['states']}")
    return run, in_run_rate(stats)


@dataclass
class Run:
    """One client run against one server: the process, the server's CPU, the in-run rate."""

    measured: Measured
    server_cpu_s: float
    in_run_rate: float | None


def equal_work_rounds(
    ctx: Context,
    start: Callable[[], RunningSandbox | RunningLean],
    lists: tuple[Path, Path],
    *,
    concurrency: int,
    count: int,
    ledger_name: str,
    first: str = "baseline",
) -> dict[str, list[Run]]:
    """`ctx.repeats` rounds, each on a fresh server from `start`: the baseline and slng-bulk back to
    back, `first` first in even rounds and second in odd ones; each run with the server's CPU.
    Each side's start-up CPU (`startup_cpu_s`, once per suite) is in `ctx.startup` after."""
    runs: dict[str, list[Run]] = {"baseline": [], "slng-bulk": []}
    order = (first, *(side for side in runs if side != first))
    for round_no in range(ctx.repeats):
        server = start()
        try:
            for side in order:
                startup_cpu_s(ctx, side, server.api_url, server.api_key)
            for side in order if round_no % 2 == 0 else order[::-1]:
                ledger = ctx.work / f"{ledger_name}-{round_no}.db"
                with ServerCpu(server.pid) as cpu:
                    measured, rate = run_side(
                        ctx,
                        side,
                        lists,
                        server.api_url,
                        server.api_key,
                        ledger,
                        concurrency=concurrency,
                        count=count,
                    )
                runs[side].append(Run(measured, cpu.used_s, rate))
        finally:
            ctx.servers.stop(server)
    return runs


def python_snippet(ctx: Context, code: str, *args: str, timeout: float = 600) -> Measured:
    env = clean_env({"HOME": str(ctx.home)})
    return run_measured([sys.executable, "-c", code, *args], env=env, cwd=ctx.work, timeout=timeout).check()


def startup_cpu_s(ctx: Context, kind: str, api_url: str, api_key: str) -> float:
    """CPU of a run with nothing to do (interpreter, imports, ledger and session set-up): the fixed
    cost every run pays, subtracted to get the cost per file. Median of three, measured once."""
    if kind not in ctx.startup:
        empty = ctx.work / "data" / "empty.csv"
        empty.parent.mkdir(parents=True, exist_ok=True)
        empty.write_text("path\n", encoding="utf-8")
        empty_list = ctx.work / "data" / "empty.txt"
        empty_list.write_text("", encoding="utf-8")
        samples = []
        for i in range(3):
            if kind == "slng-bulk":
                ledger = ctx.work / f"startup-{i}.db"
                run = slng_submit(ctx, [str(empty)], api_url, api_key, ledger, concurrency=32)
            else:
                run = baseline_three_step(ctx, empty_list, api_url, api_key, concurrency=32)
            samples.append(run.cpu_s)
        ctx.startup[kind] = statistics.median(samples)
    return ctx.startup[kind]


# --- servers' CPU ----------------------------------------------------------------------------------


class ServerCpu:
    """CPU seconds used by server processes (and their children) between start() and stop()."""

    def __init__(self, *pids: int) -> None:
        self._procs = [psutil.Process(pid) for pid in pids]
        self._before = 0.0

    def _now(self) -> float:
        total = 0.0
        for proc in self._procs:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def __enter__(self) -> ServerCpu:
        self._before = self._now()
        self.used_s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.used_s = self._now() - self._before


# --- ledger read-back ------------------------------------------------------------------------------


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


# --- data ------------------------------------------------------------------------------------------


def small_tree(ctx: Context, name: str, count: int, size: int) -> Path:
    root = ctx.work / "data" / name
    if not root.exists():
        data.small_wavs(root, count, size)
    return root


def file_lists(ctx: Context, name: str, root: Path, count: int) -> tuple[Path, Path]:
    """The first `count` files (sorted) under `root`: as a CSV manifest and as a plain path list."""
    files = sorted(root.rglob("*.wav"))[:count]
    if len(files) < count:
        raise RuntimeError(f"{root} has {len(files)} files, {count} wanted")
    manifest = ctx.work / "data" / f"{name}.csv"
    manifest.write_text("path\n" + "".join(f"{f}\n" for f in files), encoding="utf-8")
    plain = ctx.work / "data" / f"{name}.txt"
    plain.write_text("".join(f"{f}\n" for f in files), encoding="utf-8")
    return manifest, plain


# --- repeats ---------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> str:
    """min-max of the repeats, for the notes column."""
    if len(values) < 2:
        return ""
    return f"{min(values):.0f}-{max(values):.0f}"
