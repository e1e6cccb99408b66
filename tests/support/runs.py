"""Running the pipeline against a sandbox in tests, and reading back what the sandbox saw."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline import load_settings, submit
from pipeline.config.settings import Settings
from pipeline.observe.stats import RunStats
from pipeline.sandbox import Sandbox


def settings_for(sb: Sandbox, ledger: Path | str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_url": sb.api_url,
        "api_key": sb.api_key,
        "ledger": ledger,
        "progress": "none",
        "retries": 8,
    }
    values.update(overrides)
    return load_settings(**values)


async def run_submit(sb: Sandbox, sources: list[Path | str], ledger: Path, **overrides: Any) -> RunStats:
    return await submit([str(s) for s in sources], settings_for(sb, ledger, **overrides))


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def created_job_ids(sb: Sandbox) -> list[str]:
    return [job.job_id for job in sb.jobs().jobs]


def successful_creates(sb: Sandbox) -> list[str]:
    """job_ids of create calls that created a job (a second one for the same id is a duplicate)."""
    return [a.job_id or "" for a in sb.jobs().attempts if a.created]


def objects_by_key(sb: Sandbox) -> dict[str, str]:
    """Uploaded inputs only (transcripts the sandbox writes live under outputs/)."""
    return {o.key: o.md5 for o in sb.objects().objects if o.key.startswith("inputs/")}


def total_requests(sb: Sandbox) -> int:
    return sum(op.total for op in sb.stats().requests.values())


def assert_exactly_once(sb: Sandbox, files: list[Path]) -> None:
    """One job per file, no duplicate successful create, every object byte-identical to its file."""
    creates = successful_creates(sb)
    assert len(creates) == len(set(creates)), "a job was created twice"
    assert len(set(created_job_ids(sb))) == len(files)
    uploaded = sorted(objects_by_key(sb).values())
    assert sorted(md5_of(f) for f in files) == uploaded


def cli_env(sb: Sandbox, ledger: Path | str) -> dict[str, str]:
    """The environment of a `slng-bulk` subprocess aimed at `sb`, with `ledger` (a file or a
    PostgreSQL URL), quiet."""
    return {
        "SLNG_API_KEY": sb.api_key,
        "SLNG_BULK_API_URL": sb.api_url,
        "SLNG_BULK_LEDGER": str(ledger),
        "SLNG_BULK_PROGRESS": "none",
        "SLNG_BULK_LOG_LEVEL": "warning",
    }


def child_env(env: dict[str, str] | None) -> dict[str, str]:
    """The test process's environment without any SLNG_* setting of the machine, plus `env`."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SLNG_")}
    full_env.update(env or {})
    return full_env


def start_cli(
    args: list[str], env: dict[str, str], cwd: Path, *, pipe_stdin: bool = False
) -> subprocess.Popen[str]:
    """`slng-bulk ARGS` in the background (to be signalled or killed by the test)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli.app", *args],
        env=child_env(env),
        cwd=cwd,
        text=True,
        stdin=subprocess.PIPE if pipe_stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli.app", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=child_env(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
