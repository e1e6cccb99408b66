"""`python -m pipeline.sandbox`: the standalone sandbox until the `slng-bulk sandbox` command exists."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.sandbox import FaultPlan, SandboxConfig, serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-port", type=int, default=0)
    parser.add_argument("--s3-port", type=int, default=0)
    parser.add_argument("--faults", type=Path, help="fault plan, TOML or JSON")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--job-step-seconds", type=float, default=2.0)
    args = parser.parse_args()
    faults = FaultPlan.from_file(args.faults) if args.faults else FaultPlan()
    serve(
        SandboxConfig(
            host=args.host,
            api_port=args.api_port,
            s3_port=args.s3_port,
            faults=faults,
            data_dir=args.data_dir,
            job_step_seconds=args.job_step_seconds,
        )
    )


if __name__ == "__main__":
    main()
