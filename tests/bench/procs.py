"""Child processes: measured client runs (wall, CPU via wait4; peak RSS via VmHWM) and our servers.

Every server the suite starts is registered here and stopped by its own pid (SIGTERM, then SIGKILL)
when the suite ends, fails or is interrupted; nothing is ever stopped by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from tests.support.localstack import stop_process

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
_OWN_CMDLINE: Final = Path("/proc/self/cmdline").read_bytes()


@dataclass(frozen=True)
class Measured:
    """One finished child process: what it cost, as the kernel accounted it (the child alone)."""

    argv: tuple[str, ...]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mb: float  # peak resident set of the program the child ran (VmHWM), in MiB
    stdout: str
    stderr: str
    marks: dict[str, float] = field(default_factory=dict)  # seconds from spawn to a watched stderr line

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def check(self, *ok_codes: int) -> Measured:
        if self.returncode not in (ok_codes or (0,)):
            raise RuntimeError(
                f"{' '.join(self.argv[:4])} ... exited {self.returncode}\n"
                f"stdout tail: {self.stdout[-1500:]}\nstderr tail: {self.stderr[-3000:]}"
            )
        return self


CODE_DIR: list[Path] = []  # where the snapshot of `pipeline` lives, once taken


def snapshot_code(ref: str, dest: Path) -> str:
    """Copy the `pipeline` package to `dest` (from git `ref`, or the work tree); describe what it is."""
    dest.mkdir(parents=True)
    if ref == "worktree":
        shutil.copytree(
            REPO_ROOT / "pipeline", dest / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pipeline"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
        head = _git("rev-parse", "--short", "HEAD")
        description = f"work tree at {head}" + (" (pipeline/ has uncommitted changes)" if dirty else "")
    else:
        commit = _git("rev-parse", "--short", f"{ref}^{{commit}}")
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, "pipeline"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        description = f"git {ref} = {commit}"
    CODE_DIR[:] = [dest]
    return description


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def process_cpu_s(pid: int) -> float:
    """User+system CPU seconds a running process (all its threads) has used so far; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any SLNG_* setting or CA bundle, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLNG_") and k != "AWS_CA_BUNDLE"}
    env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in CODE_DIR), str(REPO_ROOT)])
    env.update(extra or {})
    return env


def _drain(stream: IO[bytes], sink: list[bytes]) -> None:
    for chunk in iter(lambda: stream.read(65536), b""):
        sink.append(chunk)


def _watch_lines(
    stream: IO[bytes], sink: list[bytes], started: float, patterns: dict[str, bytes], marks: dict[str, float]
) -> None:
    for line in iter(stream.readline, b""):
        now = time.monotonic()
        for name, needle in patterns.items():
            if name not in marks and needle in line:
                marks[name] = now - started
        sink.append(line)


def _vm_hwm_kib(pid: int) -> int | None:
    """Peak RSS of the process's current address space (so: of the exec'd program only)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _watch_rss(pid: int, peak: list[int], stop: threading.Event) -> None:
    """Poll VmHWM every 10 ms. Not ru_maxrss: on Linux that also counts the forking parent's pages
    from before exec (this harness's own ~80 MB), which would swamp small clients like curl.
    Readings count only once the child has exec'd (its command line is no longer ours)."""
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                execd = fh.read() != _OWN_CMDLINE
        except OSError:
            execd = False
        kib = _vm_hwm_kib(pid) if execd else None
        if kib is not None and kib > peak[0]:
            peak[0] = kib
        stop.wait(0.01)


def run_measured(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    watch_stderr: dict[str, bytes] | None = None,
    stdin_path: Path | None = None,
) -> Measured:
    """Run `argv` to completion; wall time from spawn to exit, rusage of that child from wait4."""
    out: list[bytes] = []
    err: list[bytes] = []
    marks: dict[str, float] = {}
    stdin = stdin_path.open("rb") if stdin_path is not None else subprocess.DEVNULL
    started = time.monotonic()
    proc = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
        threading.Thread(
            target=_watch_lines, args=(proc.stderr, err, started, watch_stderr or {}, marks), daemon=True
        ),
    ]
    peak = [0]
    stop_rss = threading.Event()
    readers.append(threading.Thread(target=_watch_rss, args=(proc.pid, peak, stop_rss), daemon=True))
    for reader in readers:
        reader.start()
    killer = threading.Timer(timeout, lambda: _kill_quietly(proc.pid))
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        _kill_quietly(proc.pid)
        proc.wait()
        raise
    finally:
        stop_rss.set()
        killer.cancel()
        if hasattr(stdin, "close"):
            stdin.close()
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join(timeout=10)
    return Measured(
        argv=tuple(argv),
        returncode=proc.returncode,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        max_rss_mb=peak[0] / 1024.0,
        stdout=b"".join(out).decode("utf-8", "replace"),
        stderr=b"".join(err).decode("utf-8", "replace"),
        marks=marks,
    )


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class ServerRegistry:
    """Servers started by this suite, stopped by pid in reverse order of start."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._cleanups: list[Callable[[], None]] = []

    def start(
        self, argv: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal Ctrl-C reaches the suite, which stops it in order
            )
        self._procs.append(proc)
        return proc

    def stop_pid(self, pid: int) -> None:
        for proc in list(self._procs):
            if proc.pid == pid:
                self.stop(proc)

    def on_close(self, cleanup: Callable[[], None]) -> None:
        self._cleanups.append(cleanup)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        stop_process(proc)
        if proc in self._procs:
            self._procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(list(self._procs)):
            try:
                self.stop(proc)
            except Exception as exc:  # keep stopping the others
                print(f"bench: could not stop pid {proc.pid}: {exc}", file=sys.stderr)
        while self._cleanups:
            try:
                self._cleanups.pop()()
            except Exception as exc:
                print(f"bench: cleanup failed: {exc}", file=sys.stderr)
