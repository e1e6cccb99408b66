"""What a run measured, the printed tables, the JSON record and `--compare`."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.procs import REPO_ROOT, Measured


@dataclass
class Result:
    """One measured whole run (ours or a baseline)."""

    scenario: str
    variant: str
    wall_s: float
    rate: float | None = None  # throughput in `unit`
    unit: str = ""
    cpu_ms_per_item: float | None = None  # client process user+sys per file/row, whole process
    peak_rss_mb: float | None = None  # client process peak RSS (VmHWM)
    ratio: float | None = None  # rate / the scenario's baseline rate (or ideal)
    ratio_to: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # client CPU per item once the fixed start-up cost (a run with nothing to do) is taken off
    run_cpu_ms_per_item: float | None = None
    server_cpu_ms_per_item: float | None = None  # the server processes' CPU over the same run
    repeats: int = 1  # figures are medians of this many interleaved runs

    @classmethod
    def of_run(
        cls,
        scenario: str,
        variant: str,
        run: Measured,
        items: float,
        rate: float | None,
        unit: str,
        **more: Any,
    ) -> Result:
        """One run's row: its wall time, client CPU per item and peak RSS as the kernel measured them."""
        return cls(
            scenario, variant, run.wall_s, rate, unit, run.cpu_s * 1000 / items, run.max_rss_mb, **more
        )

    @classmethod
    def of_repeats(
        cls,
        scenario: str,
        variant: str,
        runs: Sequence[Measured],
        items: float,
        rates: Sequence[float],
        unit: str,
        *,
        server_cpu_s: Sequence[float],
        startup_cpu_s: float | None = None,
        **more: Any,
    ) -> Result:
        """Interleaved repeats' row: the median of each figure. With the CPU of a run that has
        nothing to do (`startup_cpu_s`), also the client CPU per item once that fixed cost is off."""
        cpu_s = statistics.median(run.cpu_s for run in runs)
        return cls(
            scenario,
            variant,
            statistics.median(run.wall_s for run in runs),
            statistics.median(rates),
            unit,
            cpu_s * 1000 / items,
            statistics.median(run.max_rss_mb for run in runs),
            run_cpu_ms_per_item=None if startup_cpu_s is None else (cpu_s - startup_cpu_s) * 1000 / items,
            server_cpu_ms_per_item=statistics.median(server_cpu_s) * 1000 / items,
            repeats=len(runs),
            **more,
        )


@dataclass
class Check:
    """One target of the issue, passed or missed."""

    scenario: str
    target: str
    measured: float
    required: str
    passed: bool | None  # None: a figure the issue asks to see, with no target


@dataclass
class Suite:
    quick: bool
    code: str = ""
    results: list[Result] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    tables: dict[str, tuple[list[str], list[list[str]]]] = field(default_factory=dict)  # title: extra tables

    def add(self, result: Result) -> Result:
        self.results.append(result)
        return result

    def check(self, scenario: str, target: str, measured: float, required: str, passed: bool) -> None:
        self.checks.append(Check(scenario, target, measured, required, passed))

    def figure(self, scenario: str, what: str, measured: float) -> None:
        """A headline figure without a target (printed with the checks, marked 'info')."""
        self.checks.append(Check(scenario, what, measured, "-", None))


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 2**20
                break
    except (OSError, ValueError):
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gb": round(mem_gb, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": commit,
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]], align_left: int = 2, left_last: bool = False) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < align_left or (left_last and i == len(cells) - 1) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


NOTES = (
    ("first_row_s_from_spawn", "first row {:.2f} s"),
    ("upload_only_mb_per_s", "upload-only {:.0f} MB/s"),
    ("whole_run_files_per_s", "whole-run {:.0f}/s"),
    ("localstack_cpu_ms_per_file", "of which LocalStack {:.1f} ms/f"),
    ("files_per_s_per_worker", "{:.1f} files/s per worker"),
    ("postgres_cpu_ms_per_file", "PostgreSQL CPU {:.1f} ms/f"),
)


def notes(result: Result) -> str:
    parts = [
        fmt.format(result.extra[key]) for key, fmt in NOTES if isinstance(result.extra.get(key), int | float)
    ]
    if result.extra.get("spread"):
        parts.append(f"range {result.extra['spread']}")
    if result.extra.get("note"):
        parts.append(str(result.extra["note"]))
    return ", ".join(parts)


def render(suite: Suite) -> str:
    rows = [
        [
            r.scenario,
            r.variant,
            _fmt(r.wall_s, 2),
            f"{_fmt(r.rate)} {r.unit}" if r.rate is not None else "-",
            _fmt(r.cpu_ms_per_item, 3),
            _fmt(r.run_cpu_ms_per_item, 3),
            _fmt(r.server_cpu_ms_per_item, 3),
            _fmt(r.peak_rss_mb),
            str(r.repeats),
            f"{r.ratio:.2f}x {r.ratio_to}" if r.ratio is not None else "",
            notes(r),
        ]
        for r in suite.results
    ]
    out = [
        _table(
            [
                "scenario",
                "variant",
                "wall s",
                "throughput",
                "client CPU ms/item",
                "less start-up",
                "server CPU ms/item",
                "peak RSS MB",
                "runs",
                "ratio",
                "notes",
            ],
            rows,
            left_last=True,
        )
    ]
    out.append(
        "(figures are medians of `runs` interleaved runs; ratios are medians of the per-round ratios;"
        " 'less start-up' takes off the CPU of a run with nothing to do)"
    )
    for title, (headers, table_rows) in suite.tables.items():
        out.append("")
        out.append(title)
        out.append(_table(headers, table_rows, align_left=1))
    if suite.checks:
        out.append("")
        out.append(
            _table(
                ["scenario", "target", "measured", "required", "result"],
                [
                    [
                        c.scenario,
                        c.target,
                        _fmt(c.measured, 3),
                        c.required,
                        {True: "PASS", False: "MISS", None: "info"}[c.passed],
                    ]
                    for c in suite.checks
                ],
            )
        )
    for name, message in suite.errors.items():
        out.append(f"ERROR in {name}: {message}")
    return "\n".join(out)


def save(suite: Suite, directory: Path, argv: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"{stamp}{'-quick' if suite.quick else ''}.json"
    payload = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(argv),
        "quick": suite.quick,
        "code_measured": suite.code,
        "machine": machine(),
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "scenario_seconds": {k: round(v, 1) for k, v in suite.durations.items()},
        "results": [asdict(r) for r in suite.results],
        "checks": [asdict(c) for c in suite.checks],
        "errors": suite.errors,
        "tables": {title: {"headers": h, "rows": r} for title, (h, r) in suite.tables.items()},
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def compare(a_path: Path, b_path: Path) -> str:
    """Side by side: every (scenario, variant) in either file, A and B and B/A for each figure."""
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (a_path, b_path))

    def index(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r["scenario"], r["variant"]): r for r in data["results"]}

    ia, ib = index(a), index(b)
    rows: list[list[str]] = []
    for key in list(dict.fromkeys([*ia, *ib])):
        ra, rb = ia.get(key, {}), ib.get(key, {})
        for metric, label in (
            ("rate", "throughput"),
            ("wall_s", "wall s"),
            ("cpu_ms_per_item", "CPU ms/item"),
            ("run_cpu_ms_per_item", "CPU ms/item less start-up"),
            ("server_cpu_ms_per_item", "server CPU ms/item"),
            ("peak_rss_mb", "peak RSS MB"),
        ):
            va, vb = ra.get(metric), rb.get(metric)
            if va is None and vb is None:
                continue
            unit = f" {ra.get('unit') or rb.get('unit')}" if metric == "rate" else ""
            change = f"{vb / va:.2f}x" if va and vb is not None else "-"
            rows.append([key[0], key[1], label + unit, _fmt(va, 3), _fmt(vb, 3), change])
    header = f"A = {a_path} ({a.get('timestamp')})\nB = {b_path} ({b.get('timestamp')})\n"
    return header + _table(["scenario", "variant", "figure", "A", "B", "B/A"], rows, align_left=3)
