"""Putting audio into LocalStack, aiming `slng-bulk` at the emulators, and running it on the sandbox."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from pipeline.config.settings import Settings, load_settings
from pipeline.sandbox import Sandbox
from tests.sandbox.helpers import wav_bytes
from tests.support.localstack import LocalStackS3
from tests.support.runs import run_cli


def put_audio(server: LocalStackS3, bucket: str, keys: list[str], seconds: float = 0.2) -> dict[str, bytes]:
    """Each key holds a short WAV (a `.txt` key a few bytes of text); the bodies, by key."""
    client = server.client()
    bodies = {}
    for key in keys:
        body = b"notes" if key.endswith(".txt") else wav_bytes(seconds)
        client.put_object(Bucket=bucket, Key=key, Body=body)
        bodies[key] = body
    return bodies


def s3_flags(server: LocalStackS3) -> list[str]:
    return ["--s3-endpoint", server.endpoint, "--s3-region", server.region, "--cloud-allow-http"]


def s3_env(server: LocalStackS3) -> dict[str, str]:
    """The same as `s3_flags`, as the environment of a `slng-bulk` subprocess."""
    return {
        "SLNG_BULK_S3_ENDPOINT": server.endpoint,
        "SLNG_BULK_S3_REGION": server.region,
        "SLNG_BULK_CLOUD_ALLOW_HTTP": "true",
    }


def cloud_settings(sb: Sandbox, server: LocalStackS3, ledger: Path, **more: Any) -> Settings:
    """A library run's settings against the sandbox, with the S3 endpoint LocalStack's."""
    return load_settings(
        api_url=sb.api_url,
        api_key=sb.api_key,
        ledger=ledger,
        progress="none",
        s3_endpoint=server.endpoint,
        s3_region=server.region,
        cloud_allow_http=True,
        **more,
    )


def sandbox_submit(tmp_path: Path, *args: str, ledger: str = "l.db") -> subprocess.CompletedProcess[str]:
    """`slng-bulk submit --sandbox *args` run in `tmp_path`, with its ledger there and no progress bar."""
    return run_cli(
        "submit", "--sandbox", "--ledger", str(tmp_path / ledger), "--progress", "none", *args, cwd=tmp_path
    )
