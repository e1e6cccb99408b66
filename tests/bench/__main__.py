"""`python -m tests.bench [--quick] [--only NAME[,NAME]] [--keep]` and `--compare A.json B.json`.

Sets up its data under a fresh temp folder, starts what it needs on 127.0.0.1 (ports chosen by the
OS), measures, prints a table of absolute figures and ratios plus the targets met or missed, writes
`.bench-results/<timestamp>.json`, then stops every server it started (by pid) and removes the temp
folder, also on failure and Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import FrameType

from tests.bench.procs import REPO_ROOT, snapshot_code
from tests.bench.results import Suite, compare, machine, render, save

SCENARIO_NAMES = (
    "small_files",
    "latency",
    "large_file",
    "scale",
    "chaos",
    "fleet",
    "cloud_by_url",
    "rate_bound",
    "hidden_capacity",
    "fleet_capacity",
    "bandwidth_bound",
)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes; the whole suite in < 3 min")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help=f"run only these (repeatable or comma-separated): {', '.join(SCENARIO_NAMES)}",
    )
    parser.add_argument(
        "--ref",
        default="HEAD",
        help="code to measure: a git ref (default HEAD, the committed code, stable while others edit the"
        " work tree) or 'worktree' (the pipeline/ folder as it is now); snapshotted before anything runs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (data, ledgers, logs)")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run every slng-bulk under `py-spy record` (raw folded stacks, one file per run, in DIR);"
        " the figures are then slower than unprofiled ones",
    )
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / ".bench-results")
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A.json", "B.json"),
        help="compare two recorded runs and exit",
    )
    args = parser.parse_args(argv)
    if args.compare:
        print(compare(*args.compare))
        return 0
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()] or list(SCENARIO_NAMES)
    unknown = [n for n in names if n not in SCENARIO_NAMES]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIO_NAMES)}")

    for name in [k for k in os.environ if k.startswith("SLNG_")]:
        del os.environ[name]
    signal.signal(signal.SIGTERM, _on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="slng-bench-"))
    try:
        code_version = snapshot_code(args.ref, work / "code")
    except Exception:
        shutil.rmtree(work, ignore_errors=True)
        raise
    # This process and every child import `pipeline` from the snapshot, never the live work tree.
    sys.path.insert(0, str(work / "code"))
    from tests.bench.scenarios import SCENARIOS, Context
    from tests.bench.servers import Servers

    assert tuple(SCENARIOS) == SCENARIO_NAMES
    suite = Suite(quick=args.quick, code=code_version)
    servers = Servers(work)
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['mem_gb']} GB, Linux {info['kernel']}, "
        f"Python {info['python']}, load {info['load_avg_at_start']}, commit {info['git_commit']}"
    )
    print(f"code measured: {code_version}")
    print(f"work folder: {work}{' (kept)' if args.keep else ''}", flush=True)
    started = time.monotonic()
    interrupted = False
    context = Context(args.quick, work, servers, suite, profile_dir=args.profile)
    try:
        for name in names:
            print(f"== {name} ...", flush=True)
            t0 = time.monotonic()
            try:
                SCENARIOS[name](context)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                lines = [line for line in str(exc).splitlines() if line.strip()]
                brief = lines[0] + (f" ... {lines[-1].strip()}" if len(lines) > 1 else "") if lines else ""
                suite.errors[name] = f"{type(exc).__name__}: {brief}"
                traceback.print_exc()
            suite.durations[name] = time.monotonic() - t0
            print(f"   {name} done in {suite.durations[name]:.1f} s", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping servers", file=sys.stderr)
    finally:
        servers.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(render(suite))
    path = save(suite, args.results_dir, ["python", "-m", "tests.bench", *(argv or sys.argv[1:])])
    print(f"\nresults: {path} (suite {time.monotonic() - started:.0f} s)")
    if interrupted:
        return 130
    return 1 if suite.errors else 0


if __name__ == "__main__":
    sys.exit(main())
