"""The servers a benchmark needs: sandboxes (own S3 or LocalStack-backed) and one LocalStack S3."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.sandbox import FaultPlan, SandboxConfig
from tests.bench.procs import REPO_ROOT, ServerRegistry, clean_env
from tests.support.localstack import LocalStackS3, find_localstack_python, run_localstack

READY_TIMEOUT_S = 60.0
_API_LINE = re.compile(r"SLNG sandbox API: (\S+)")
_S3_LINE = re.compile(r"S3: (\S+)")
_LEAN_LINE = re.compile(r"LEAN API: (\S+)")


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


@dataclass(frozen=True)
class RunningLean:
    """A `lean_server` (the three requests, answered cheaply); any bearer key is accepted."""

    api_url: str
    pid: int
    api_key: str = "sk-lean-bench"

    def stats(self) -> Any:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.api_url}/__lean__/stats", timeout=60) as resp:
            return json.loads(resp.read().decode("utf-8"))


@dataclass(frozen=True)
class RunningSandbox:
    api_url: str
    s3_url: str
    api_key: str
    config: SandboxConfig
    pid: int

    def readback(self, what: str) -> Any:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.api_url}/__sandbox__/{what}", timeout=60) as resp:
            return json.loads(resp.read().decode("utf-8"))


class Servers:
    """Starts servers on 127.0.0.1 (ports chosen by the OS) and stops every one of them on close."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.registry = ServerRegistry()
        self._stack = contextlib.ExitStack()  # LocalStack only
        self._localstack: LocalStackS3 | None = None
        self._count = 0

    def close(self) -> None:
        try:
            self.registry.close()
        finally:
            self._stack.close()

    def localstack(self) -> LocalStackS3:
        """One LocalStack S3 for the whole suite, started on first use."""
        if self._localstack is None:
            python, reason = find_localstack_python()
            if python is None:  # a fresh clone: install it with the project's own script, once
                print(f"   LocalStack not found ({reason}); running .ci/install-localstack.sh", flush=True)
                subprocess.run(["bash", str(REPO_ROOT / ".ci" / "install-localstack.sh")], check=False)
                python, reason = find_localstack_python()
            if python is None:
                raise RuntimeError(f"LocalStack unavailable ({reason}); run bash .ci/install-localstack.sh")
            self._localstack = self._stack.enter_context(run_localstack(python))
        return self._localstack

    def stop_localstack(self) -> None:
        """Stop LocalStack now (by its pid) so it does not idle beside the next benchmark."""
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self._localstack = None

    def sandbox(
        self, *, faults: FaultPlan | None = None, localstack_bucket: str | None = None
    ) -> RunningSandbox:
        self._count += 1
        name = f"sandbox-{self._count}"
        tmp = self.workdir / name
        tmp.mkdir(parents=True, exist_ok=True)
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "job_step_seconds": 0.0,
            "faults": faults or FaultPlan(),
        }
        if localstack_bucket is not None:
            ls = self.localstack()
            values.update(
                s3_endpoint=ls.endpoint,
                s3_access_key=ls.access_key,
                s3_secret_key=ls.secret_key,
                s3_bucket=localstack_bucket,
                s3_region=ls.region,
            )
        config = SandboxConfig(**values)
        config_path = tmp / "config.json"
        config_path.write_text(config.model_dump_json(), encoding="utf-8")
        log = tmp / "sandbox.log"
        loop = "uvloop" if uvloop_installed() else "asyncio"
        proc = self.registry.start(
            [sys.executable, "-m", "tests.bench.sandbox_launcher", str(config_path), "--loop", loop],
            env=clean_env({"TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}),
            cwd=REPO_ROOT,
            log=log,
        )
        api, s3 = self._wait_for(proc, log, _API_LINE, _S3_LINE)
        return RunningSandbox(api, s3, config.api_keys[0], config, proc.pid)

    def lean(self, latency_ms: float = 0.0) -> RunningLean:
        """A lean server (`lean_server.py`) answering every request after `latency_ms`."""
        self._count += 1
        tmp = self.workdir / f"lean-{self._count}"
        tmp.mkdir(parents=True, exist_ok=True)
        log = tmp / "lean.log"
        proc = self.registry.start(
            [sys.executable, "-m", "tests.bench.lean_server", "--latency-ms", str(latency_ms)],
            env=clean_env({"PYTHONUNBUFFERED": "1"}),
            cwd=REPO_ROOT,
            log=log,
        )
        (api,) = self._wait_for(proc, log, _LEAN_LINE)
        return RunningLean(api, proc.pid)

    def _wait_for(self, proc: subprocess.Popen[bytes], log: Path, *lines: re.Pattern[str]) -> list[str]:
        """The first group of each of `lines` once all have appeared in the server's log."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            text = log.read_text(encoding="utf-8", errors="replace")
            found = [pattern.search(text) for pattern in lines]
            if all(found):
                return [match.group(1) for match in found if match]
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        self.registry.stop(proc)
        raise RuntimeError(f"server did not start; log:\n{log.read_text(errors='replace')[-3000:]}")

    def stop(self, server: RunningSandbox | RunningLean) -> None:
        self.registry.stop_pid(server.pid)
