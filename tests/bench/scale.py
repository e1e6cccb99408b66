"""Scale of the work: how time and memory grow with 10k / 100k / 1M rows.

Per size N (quick: 10k and 100k; full: also 1M):
- manifest read: `submit --dry-run` of an N-row CSV over 64 real files (every row read, checked
  and stat'ed; durations cached per file), first row missing so the first `rejected:` line gives
  the time to the first row. Rows/s and peak RSS.
- no-op rerun: N distinct files (hard links to 64 real files: N identities at no disk cost), a
  ledger filled in bulk (`populate_ledger.py`: executemany into the project's schema, the rows the
  `Ledger` API would write, held equal by a test) with every file created, then `submit` of the
  same manifest with `--error-on-nothing` (exit 7) against a lean server that must see zero
  requests. Wall time and peak RSS.
Baselines at the largest N: stdlib `csv.reader` + `os.stat` per row, and `slng-bulk --version`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

from tests.bench import data
from tests.bench.common import Context, python_snippet, slng_submit, small_tree
from tests.bench.procs import Measured, clean_env, run_measured
from tests.bench.results import Result

MANIFEST_RATE_TARGET: Final = 100_000  # rows/s at 1M
MANIFEST_RSS_MB: Final = 150.0
RERUN_TARGET_S: Final = 30.0  # for 1M finished rows
LINKS_PER_DIR: Final = 1000

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


def linked_tree(ctx: Context, count: int, targets: list[Path]) -> Path:
    """`count` hard links (distinct paths, so distinct identities) to `targets`, as a manifest."""
    root = ctx.work / "data" / f"links-{count}"
    manifest = ctx.work / "data" / f"links-{count}.csv"
    lines = ["path\n"]
    for i in range(count):
        folder = root / f"d{i // LINKS_PER_DIR:05d}"
        if i % LINKS_PER_DIR == 0:
            folder.mkdir(parents=True)
        link = folder / f"f{i:07d}.wav"
        os.link(targets[i % len(targets)], link)
        lines.append(f"{link}\n")
    manifest.write_text("".join(lines), encoding="utf-8")
    return manifest


def dry_run(ctx: Context, manifest: Path, rows: int) -> Measured:
    argv = [
        sys.executable,
        "-m",
        "pipeline.cli.app",
        "submit",
        str(manifest),
        "--dry-run",
        "--ledger",
        str(ctx.work / f"dry-{rows}.db"),
    ]
    run = run_measured(
        argv,
        env=clean_env({"HOME": str(ctx.home)}),
        cwd=ctx.work,
        timeout=1800,
        watch_stderr={"first_rejected": b"rejected:"},
    ).check(3)
    if f"{rows - 1} valid files, 1 rejected row" not in run.stdout:
        raise RuntimeError(f"unexpected dry-run summary: {run.stdout!r}")
    return run


def populate(ctx: Context, ledger: Path, manifest: Path, count: int) -> Measured:
    run = run_measured(
        [sys.executable, "-m", "tests.bench.populate_ledger", str(ledger), str(manifest)],
        env=clean_env({"HOME": str(ctx.home)}),
        cwd=ctx.work,
        timeout=3600,
    ).check()
    if f"populated {count}" not in run.stdout:
        raise RuntimeError(f"populate: {run.stdout!r}")
    return run


def scale(ctx: Context) -> None:
    name = "scale"
    sizes = (10_000, 100_000) if ctx.quick else (10_000, 100_000, 1_000_000)
    audio = small_tree(ctx, "scale-audio", 64, 4096)
    targets = sorted(audio.rglob("*.wav"))
    table: list[list[str]] = []
    for rows in sizes:
        manifest = data.manifest(
            ctx.work / "data" / f"manifest-{rows}.csv", rows, targets, bad_first_row=True
        )
        dry = dry_run(ctx, manifest, rows)
        manifest.unlink()
        first = dry.marks.get("first_rejected", float("nan"))
        dry_result = ctx.suite.add(
            Result.of_run(
                name,
                f"slng-bulk submit --dry-run ({rows:,} rows)",
                dry,
                rows,
                rows / dry.wall_s,
                "rows/s",
                extra={"first_row_s_from_spawn": first},
            )
        )
        links = linked_tree(ctx, rows, targets)
        ledger = ctx.work / f"scale-{rows}.db"
        filled = populate(ctx, ledger, links, rows)
        ctx.suite.add(
            Result.of_run(
                name,
                f"populate {rows:,} created rows (bulk fill)",
                filled,
                rows,
                rows / filled.wall_s,
                "rows/s",
            )
        )
        lean = ctx.servers.lean()
        try:
            rerun = slng_submit(
                ctx,
                [str(links)],
                lean.api_url,
                lean.api_key,
                ledger,
                concurrency=32,
                extra=["--error-on-nothing"],
                ok=(7,),
                timeout=3600,
            )
            requests = sum(lean.stats()["requests"].values())
        finally:
            ctx.servers.stop(lean)
        if requests:
            raise RuntimeError(f"a rerun with nothing to do sent {requests} requests")
        rerun_result = ctx.suite.add(
            Result.of_run(
                name,
                f"slng-bulk rerun, nothing to do ({rows:,} files done)",
                rerun,
                rows,
                rows / rerun.wall_s,
                "files/s",
                extra={"api_requests": requests},
            )
        )
        table.append(
            [
                f"{rows:,}",
                f"{dry.wall_s:.2f}",
                f"{dry_result.rate:,.0f}",
                f"{dry.max_rss_mb:.0f}",
                f"{first:.2f}",
                f"{filled.wall_s:.1f}",
                f"{rerun.wall_s:.2f}",
                f"{rerun_result.rate:,.0f}",
                f"{rerun.max_rss_mb:.0f}",
            ]
        )
        if rows == sizes[-1]:
            largest(ctx, name, rows, targets, dry_result, rerun_result, first)
    ctx.suite.tables["scaling (one run per size)"] = (
        [
            "rows",
            "dry-run s",
            "rows/s",
            "dry-run RSS MB",
            "first row s",
            "populate s",
            "no-op rerun s",
            "rerun files/s",
            "rerun RSS MB",
        ],
        table,
    )


def largest(
    ctx: Context, name: str, rows: int, targets: list[Path], dry: Result, rerun: Result, first: float
) -> None:
    manifest = data.manifest(ctx.work / "data" / f"manifest-{rows}.csv", rows, targets, bad_first_row=True)
    baseline = python_snippet(ctx, BASELINE_MANIFEST, str(manifest))
    base = ctx.suite.add(
        Result.of_run(
            name,
            f"stdlib csv.reader + os.stat per row ({rows:,} rows)",
            baseline,
            rows,
            rows / baseline.wall_s,
            "rows/s",
            ratio=1.0,
            ratio_to="stdlib",
        )
    )
    manifest.unlink()
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
    assert (
        base.rate and dry.rate is not None and dry.peak_rss_mb is not None and rerun.peak_rss_mb is not None
    )
    dry.ratio, dry.ratio_to = dry.rate / base.rate, "stdlib"
    label = f"{rows:,}"
    ctx.suite.check(
        name,
        f"manifest rows/s ({label} rows)",
        dry.rate,
        f">= {MANIFEST_RATE_TARGET:,}",
        dry.rate >= MANIFEST_RATE_TARGET,
    )
    ctx.suite.check(
        name,
        f"manifest peak RSS MB ({label})",
        dry.peak_rss_mb,
        f"< {MANIFEST_RSS_MB:.0f}",
        dry.peak_rss_mb < MANIFEST_RSS_MB,
    )
    ctx.suite.check(name, "first row processed, s from spawn", first, "<= 1.0", first <= 1.0)
    limit = RERUN_TARGET_S * rows / 1_000_000
    ctx.suite.check(
        name, f"no-op rerun wall s ({label} done)", rerun.wall_s, f"< {limit:g}", rerun.wall_s < limit
    )
    ctx.suite.figure(name, f"no-op rerun peak RSS MB ({label})", rerun.peak_rss_mb)
