"""`slng-bulk sandbox` and `python -m pipeline.sandbox`: serve the emulator in the foreground.

The command lives with the sandbox, not in the CLI: the CLI forwards its `sandbox` arguments here
only when asked, so neither the CLI nor the client imports the sandbox (or botocore) otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pipeline.errors import ExitCode
from pipeline.sandbox.config import SandboxConfig
from pipeline.sandbox.faults import FaultPlan
from pipeline.sandbox.service import serve

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _env(name: str) -> dict[str, Any]:
    """Every option is also an environment variable, shown in --help like the CLI's settings."""
    # SLNG_BULK_SANDBOX_*: the sandbox's own variables, beside the tool's SLNG_BULK_* settings.
    return {"envvar": f"SLNG_BULK_SANDBOX_{name}", "show_envvar": True}


@click.command(name="sandbox", context_settings=CONTEXT)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    **_env("HOST"),
    help="Address to bind (keep it on loopback: the sandbox has no real security).",
)
@click.option(
    "--api-port",
    type=int,
    default=8765,
    show_default=True,
    **_env("API_PORT"),
    help="API port (0 = any free port).",
)
@click.option(
    "--s3-port",
    type=int,
    default=8766,
    show_default=True,
    **_env("S3_PORT"),
    help="S3 port (0 = any free port).",
)
@click.option(
    "--faults",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    **_env("FAULTS"),
    help="TOML or JSON fault plan.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    **_env("DATA_DIR"),
    help="Keep jobs and objects here across restarts (default: in memory).",
)
@click.option(
    "--job-step-seconds",
    type=float,
    default=2.0,
    show_default=True,
    **_env("JOB_STEP_SECONDS"),
    help="Time between job status steps.",
)
@click.option(
    "--s3-endpoint",
    **_env("S3_ENDPOINT"),
    help="Presign for this external S3-compatible endpoint (LocalStack, a real bucket) instead.",
)
@click.option("--s3-access-key", **_env("S3_ACCESS_KEY"), help="External S3 access key.")
@click.option("--s3-secret-key", **_env("S3_SECRET_KEY"), help="External S3 secret key.")
@click.option("--s3-bucket", **_env("S3_BUCKET"), help="Bucket (external mode).")
@click.option("--s3-region", default="us-east-1", show_default=True, **_env("S3_REGION"))
def sandbox_command(faults: Path | None, **settings: Any) -> None:
    """Run the local SLNG Batch API emulator (API + strict S3) in the foreground."""
    # Every other option is named after the SandboxConfig field it sets, which validates it.
    try:
        plan = FaultPlan.from_file(faults) if faults else FaultPlan()
        config = SandboxConfig(faults=plan, **settings)
    except (ValueError, OSError) as exc:
        click.echo(f"slng-bulk: error: sandbox: {exc}".splitlines()[0], err=True)
        sys.exit(int(ExitCode.CONFIG))
    serve(config)
