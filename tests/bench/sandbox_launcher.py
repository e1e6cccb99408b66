"""`python -m tests.bench.sandbox_launcher CONFIG.json`: serve a sandbox built from a full SandboxConfig.

`python -m pipeline.sandbox` has no flags for external-S3 mode (s3_endpoint, keys, bucket), so the
suite writes the whole `SandboxConfig` (faults included) as JSON and starts the sandbox through this.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.sandbox import SandboxConfig, serve


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m tests.bench.sandbox_launcher CONFIG.json")
    serve(SandboxConfig.model_validate_json(Path(sys.argv[1]).read_text(encoding="utf-8")))


if __name__ == "__main__":
    main()
