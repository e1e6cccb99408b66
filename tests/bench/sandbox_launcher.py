"""`python -m tests.bench.sandbox_launcher CONFIG.json [--loop asyncio|uvloop]`: serve a sandbox built
from a full SandboxConfig.

`python -m pipeline.sandbox` has no flags for external-S3 mode (s3_endpoint, keys, bucket), so the
suite writes the whole `SandboxConfig` (faults included) as JSON and starts the sandbox through this.
`--loop uvloop` (the suite's default where uvloop is installed) runs the same sandbox code on a
cheaper event loop: on two shared cores every millisecond the server spends is taken from the client.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from pipeline.sandbox import SandboxConfig, serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.sandbox_launcher")
    parser.add_argument("config", type=Path)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # `serve` calls asyncio.run
    serve(SandboxConfig.model_validate_json(args.config.read_text(encoding="utf-8")))


if __name__ == "__main__":
    main()
