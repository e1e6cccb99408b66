"""The package and tests as they were at an earlier commit, from the repository's own history
(`git archive`), for tests that build a ledger with an older release's code in a subprocess."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def old_checkout(folder: Path, commit: str) -> Path:
    """`pipeline` and `tests` at `commit`, unpacked under `folder`/old-<commit>."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "pipeline", "tests"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        pytest.fail(f"cannot read commit {commit} from the repository's history: {archive.stderr!r}")
    root = folder / f"old-{commit}"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    return root


def run_old_code(root: Path, script: str, *args: str) -> None:
    """`python -c script args` with the old checkout at `root` first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", script, *args], env=env, check=True, cwd=root)
