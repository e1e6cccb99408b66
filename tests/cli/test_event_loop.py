"""The event loop the commands run on: uvloop when installed (the `fast` extra), asyncio's otherwise,
or whichever `--event-loop` / SLNG_BULK_EVENT_LOOP names."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

import pytest

from pipeline.cli.eventloop import loop_factory, run_async
from pipeline.errors import ConfigError
from tests.support.runs import run_cli


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def _hide_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import uvloop` raises ImportError from here on, as on a machine without the `fast` extra."""
    monkeypatch.setitem(sys.modules, "uvloop", None)


def test_asyncio_is_used_when_asked_even_with_uvloop_installed() -> None:
    assert loop_factory("asyncio") is None
    assert run_async(_loop_module, loop="asyncio").startswith("asyncio")


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_uvloop(monkeypatch)
    assert loop_factory("auto") is None
    assert run_async(_loop_module, loop="auto").startswith("asyncio")


def test_asking_for_uvloop_without_it_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_uvloop(monkeypatch)
    with pytest.raises(ConfigError, match=r"slng-bulk\[fast\]"):
        loop_factory("uvloop")


def test_auto_uses_uvloop_when_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory("auto") is uvloop.new_event_loop
    assert run_async(_loop_module, loop="auto").startswith("uvloop")


def test_arguments_and_result_pass_through() -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    assert run_async(add, 2, 3, loop="asyncio") == 5


@pytest.mark.parametrize("how", ["env", "flag"])
def test_the_setting_reaches_the_command(tmp_path: Path, how: str) -> None:
    manifest = tmp_path / "empty.csv"
    manifest.write_text("path\n")
    args = ["submit", str(manifest), "--ledger", str(tmp_path / "l.db"), "--log-level", "debug"]
    env = {"SLNG_API_KEY": "sk-test-0123456789", "SLNG_BULK_API_URL": "http://127.0.0.1:9"}
    if how == "env":
        env["SLNG_BULK_EVENT_LOOP"] = "asyncio"
    else:
        args += ["--event-loop", "asyncio"]
    result = run_cli(*args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "event loop: asyncio" in result.stderr


def test_the_collector_is_eased_for_the_run_and_its_thresholds_restored_after() -> None:
    """Per file the run allocates many short-lived objects: gen-0 collections every 700 of them, each
    also scanning the thousands of objects from start-up, are CPU spent finding no garbage."""
    before = gc.get_threshold()

    async def inside() -> tuple[tuple[int, int, int], int]:
        return gc.get_threshold(), gc.get_freeze_count()

    threshold, frozen = run_async(inside, loop="asyncio")
    assert threshold[0] >= 10 * before[0] and frozen > 0
    assert gc.get_threshold() == before


def test_the_thresholds_are_restored_when_the_run_fails() -> None:
    before = gc.get_threshold()

    async def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_async(boom, loop="asyncio")
    assert gc.get_threshold() == before
