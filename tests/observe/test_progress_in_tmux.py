"""The progress bar as a person sees it: a real terminal (tmux) at 80 and 160 columns, a run
against a slowed sandbox, the pane captured several times while it runs.

Checked in every capture: no line wider than the pane (`capture-pane -J` joins a wrapped line
back, so a wrap shows as a longer line); the bar line has the fields its width allows; after the
first seconds a rate and an ETA are shown (not `?` and `-:--:--`); the run ends at 100%.
Skipped when tmux is missing, unless SLNG_REQUIRE_TMUX=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.sandbox import FaultPlan, Sandbox, SandboxConfig
from tests.support.audio import make_tree
from tests.support.runs import child_env

ENV_REQUIRE = "SLNG_REQUIRE_TMUX"
FILES = 60
FAULTS = {"operations": {"create": {"latency": {"fixed_ms": 250}}, "presign": {"latency": {"fixed_ms": 40}}}}
BAR_LINE = re.compile(r"\d+/≥?\d+ files \d+%")


def tmux_or_skip() -> str:
    found = shutil.which("tmux")
    if found is None:
        if os.environ.get(ENV_REQUIRE, "").strip() == "1":
            pytest.fail(f"{ENV_REQUIRE}=1 but tmux is not installed", pytrace=False)
        pytest.skip("tmux is not installed (apt-get install tmux)")
    return found


@pytest.fixture
def slowed_sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(faults=FaultPlan.model_validate(FAULTS))).run_in_thread() as sb:
        yield sb


class Pane:
    """One detached tmux session of a given width on a private server socket (one server per
    width: a second session on the same server may be sized like the first)."""

    def __init__(self, tmux: str, socket: Path, name: str, width: int) -> None:
        self.tmux, self.socket, self.name, self.width = tmux, socket, name, width

    def run(self, *args: str) -> str:
        command = [self.tmux, "-S", str(self.socket), "-f", "/dev/null", *args]
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=10).stdout

    def start(self, command: str) -> None:
        """The command starts once the window has its size (a new pane can start out at 80x24)."""
        wait = f"{shlex.quote(self.tmux)} -S {shlex.quote(str(self.socket))} wait-for go; {command}"
        self.run("new-session", "-d", "-s", self.name, "-x", str(self.width), "-y", "30", wait)
        self.run("resize-window", "-t", self.name, "-x", str(self.width), "-y", "30")
        self.run("wait-for", "-S", "go")

    def capture(self) -> list[str]:
        return self.run("capture-pane", "-p", "-J", "-t", self.name).rstrip("\n").splitlines()


def bar_line(lines: list[str]) -> str | None:
    found = [line for line in lines if BAR_LINE.search(line)]
    return found[-1] if found else None


@pytest.mark.slow
def test_the_bar_fits_80_and_160_columns_and_shows_a_pace_while_the_walk_grows(
    slowed_sandbox: Sandbox, tmp_path: Path
) -> None:
    tmux = tmux_or_skip()
    for day in ("2024-05-01", "2024-05-02", "2024-05-03"):
        make_tree(tmp_path / "in" / day, FILES // 3)
    env = child_env(
        {
            "SLNG_API_KEY": slowed_sandbox.api_key,
            "SLNG_BULK_API_URL": slowed_sandbox.api_url,
            "TERM": "xterm-256color",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        }
    )
    env_args = [f"{k}={v}" for k, v in env.items() if k.startswith(("SLNG_", "PYTHONPATH", "PATH", "HOME"))]
    panes = {}
    for width in (80, 160):
        run = [sys.executable, "-m", "pipeline.cli.app", "submit", "in", "--ledger", f"l{width}.db"]
        run += ["--concurrency", "4", "--progress", "bar", "--log-level", "warning"]
        command = (
            f"cd {shlex.quote(str(tmp_path))} && env {shlex.join(env_args + run)}; echo EXIT $?; sleep 60"
        )
        pane = Pane(tmux, tmp_path / f"tmux{width}.sock", f"w{width}", width)  # a server each: its own size
        pane.start(command)
        panes[width] = pane
    captures: dict[int, list[list[str]]] = {80: [], 160: []}
    started = time.monotonic()
    try:
        while time.monotonic() - started < 60:
            for width, pane in panes.items():
                captures[width].append(pane.capture())
            if all(any("EXIT" in line for line in captures[w][-1]) for w in panes):
                break
            time.sleep(0.5)  # a person's glance every half second, not waiting for an event
    finally:
        for pane in panes.values():
            pane.run("kill-server")

    for width, shots in captures.items():
        for lines in shots:
            too_wide = [line for line in lines if len(line) > width]
            assert too_wide == [], f"wrapped at {width} columns: {too_wide}"
        bars = [bar_line(lines) for lines in shots]
        seen = [b for b in bars if b is not None]
        assert len(seen) >= 4, f"too few captures of the bar at {width}: {shots[-1]}"
        final = shots[-1]
        assert any("EXIT 0" in line for line in final), final
        assert f"{FILES}/{FILES} files 100%" in (bar_line(final) or ""), final
        middle = seen[2:-1]  # after the first second or so, before the end
        assert middle, seen
        for bar in middle:
            assert "files/s" in bar and "ETA" in bar and "-:--:--" not in bar, bar
        if width == 160:
            assert all("in flight" in bar and "B" in bar for bar in middle), middle
        in_flight = [int(m.group(1)) for b in seen if (m := re.search(r"(\d+) in flight", b))]
        assert all(n <= 4 for n in in_flight), in_flight
