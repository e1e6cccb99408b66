"""Sick disks for tests: a small real tmpfs that can be filled up or made read-only (needs root's
mount; the tests that use it skip with the reason when mounting is not permitted, and fail instead
when SLNG_REQUIRE_TMPFS=1, as in CI)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

ENV_REQUIRE = "SLNG_REQUIRE_TMPFS"


def _unavailable(message: str) -> NoReturn:
    if os.environ.get(ENV_REQUIRE, "").strip() == "1":
        pytest.fail(f"{ENV_REQUIRE}=1 but {message}", pytrace=False)
    pytest.skip(message)


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "2m") mounted at `where` for the block; skips when not permitted."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        mounted = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where))
    except FileNotFoundError:
        _unavailable("no mount command here: cannot make a small filesystem")
    if mounted.returncode != 0:
        _unavailable(f"cannot mount a tmpfs here ({mounted.stderr.strip() or mounted.returncode})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def make_read_only(mount_point: Path) -> None:
    """Remount a small_tmpfs read-only (chmod does not stop root; a read-only mount does)."""
    done = _mount("-o", "remount,ro", str(mount_point))
    if done.returncode != 0:
        _unavailable(f"cannot remount read-only ({done.stderr.strip() or done.returncode})")


def fill(folder: Path, leave: int = 0) -> Path:
    """Write a filler file until the filesystem has not one byte left, then give back `leave`
    bytes (a nearly full disk); returns the filler (unlink it to free the space)."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            block = b"\0" * chunk
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)
    return filler
