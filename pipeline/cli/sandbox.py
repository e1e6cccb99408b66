"""`sandbox`: the local API emulator in the foreground."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.running import fail
from pipeline.config.settings import ENV_PREFIX
from pipeline.errors import ConfigError


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar=f"{ENV_PREFIX}SANDBOX_HOST",
    help="Address to bind (keep it on loopback: the sandbox has no real security).",
)
@click.option(
    "--api-port",
    type=int,
    default=8765,
    show_default=True,
    envvar=f"{ENV_PREFIX}SANDBOX_API_PORT",
    help="API port (0 = any free port).",
)
@click.option(
    "--s3-port",
    type=int,
    default=8766,
    show_default=True,
    envvar=f"{ENV_PREFIX}SANDBOX_S3_PORT",
    help="S3 port (0 = any free port).",
)
@click.option(
    "--faults",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar=f"{ENV_PREFIX}SANDBOX_FAULTS",
    help="TOML or JSON fault plan.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=f"{ENV_PREFIX}SANDBOX_DATA_DIR",
    help="Keep jobs and objects here across restarts (default: in memory).",
)
@click.option(
    "--job-step-seconds",
    type=float,
    default=2.0,
    show_default=True,
    envvar=f"{ENV_PREFIX}SANDBOX_JOB_STEP_SECONDS",
    help="Time between job status steps.",
)
@click.option(
    "--s3-endpoint",
    envvar=f"{ENV_PREFIX}SANDBOX_S3_ENDPOINT",
    help="Presign for this external S3-compatible endpoint (LocalStack, a real bucket) instead.",
)
@click.option("--s3-access-key", envvar=f"{ENV_PREFIX}SANDBOX_S3_ACCESS_KEY", help="External S3 access key.")
@click.option("--s3-secret-key", envvar=f"{ENV_PREFIX}SANDBOX_S3_SECRET_KEY", help="External S3 secret key.")
@click.option("--s3-bucket", envvar=f"{ENV_PREFIX}SANDBOX_S3_BUCKET", help="Bucket (external mode).")
@click.option("--s3-region", default="us-east-1", show_default=True, envvar=f"{ENV_PREFIX}SANDBOX_S3_REGION")
def sandbox(
    host: str,
    api_port: int,
    s3_port: int,
    faults: Path | None,
    data_dir: Path | None,
    job_step_seconds: float,
    s3_endpoint: str | None,
    s3_access_key: str | None,
    s3_secret_key: str | None,
    s3_bucket: str | None,
    s3_region: str,
) -> None:
    """Run the local SLNG Batch API emulator (API + strict S3) in the foreground."""
    from pipeline.sandbox import FaultPlan, SandboxConfig, serve

    try:
        plan = FaultPlan.from_file(faults) if faults else FaultPlan()
        config = SandboxConfig(
            host=host,
            api_port=api_port,
            s3_port=s3_port,
            faults=plan,
            data_dir=data_dir,
            job_step_seconds=job_step_seconds,
            s3_endpoint=s3_endpoint,
            s3_access_key=s3_access_key,
            s3_secret_key=s3_secret_key,
            s3_bucket=s3_bucket,
            s3_region=s3_region,
        )
    except (ValueError, OSError) as exc:
        fail(ConfigError(f"sandbox: {exc}".splitlines()[0]))
    serve(config)
