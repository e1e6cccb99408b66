"""What the Azurite and GCS emulator fixtures share: a loopback server process started on a free
port in a temp folder of its own, waited for, stopped by its pid, and a skip (or, when CI requires
it, a failure) when absent."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.localstack import _free_loopback_port, _log_tail, stop_process

free_loopback_port = _free_loopback_port
READY_TIMEOUT_S = 30.0


class EmulatorError(RuntimeError):
    """An emulator could not be started or did not become ready."""


def unavailable(require_env: str, message: str) -> NoReturn:
    """Skip the test, or fail it when `require_env`=1 (CI must not go green by testing nothing)."""
    if os.environ.get(require_env, "").strip() == "1":
        pytest.fail(f"{require_env}=1 but {message}", pytrace=False)
    pytest.skip(message)


def answers(url: str) -> bool:
    """The server answers HTTP at `url` (any status)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@contextlib.contextmanager
def running(command: list[str], ready_url: str, log_path: Path, name: str) -> Iterator[int]:
    """Start `command`, wait until `ready_url` answers, yield its pid, then stop it by that pid."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not answers(ready_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise EmulatorError(f"{name} did not start on {ready_url}; log tail:\n{_log_tail(log_path)}")
            time.sleep(0.05)
        yield proc.pid
    finally:
        stop_process(proc)


@dataclass(frozen=True)
class Workspace:
    """Where one emulator runs: its binary, a temp folder of its own and a free loopback port."""

    name: str
    binary: Path
    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self, args: list[str], ready_path: str) -> AbstractContextManager[int]:
        """The binary `running` with `args`, its log in the folder, ready once `ready_path` answers."""
        command = [str(self.binary), *args]
        return running(command, self.url + ready_path, self.folder / f"{self.name}.log", self.name)


@contextlib.contextmanager
def workspace(name: str, found: tuple[Path | None, str], require_env: str) -> Iterator[Workspace]:
    """A workspace for the binary a finder `found` (or its reason why not: `unavailable`), its folder
    removed afterwards."""
    binary, reason = found
    if binary is None:
        unavailable(require_env, f"{name} unavailable ({reason})")
    folder = Path(tempfile.mkdtemp(prefix=f"slng-{name.lower()}-"))
    try:
        yield Workspace(name, binary, folder, free_loopback_port())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
