"""The README's library section: its examples run as written against the sandbox, and the names
`pipeline` exports are exactly the documented ones."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from aiohttp.test_utils import TestClient, TestServer

import pipeline
from pipeline.sandbox import Sandbox
from tests.support.audio import make_tree
from tests.support.runs import settings_for

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parents[2] / "README.md"


def library_section() -> str:
    text = README.read_text()
    return text[text.index("## As a library\n") : text.index("## Security\n")]


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", library_section(), re.S)


def run_example(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_the_exported_names_are_exactly_the_documented_ones() -> None:
    section = library_section()
    documented = set(re.findall(r"`(?:pipeline\.)?([A-Za-z_]\w*)(?:\(|`)", section))
    exported = set(pipeline.__all__) - {"__version__"}
    undocumented = sorted(name for name in exported if name not in documented)
    assert undocumented == [], f"exported but not named in README's library section: {undocumented}"
    for name in pipeline.__all__:
        assert hasattr(pipeline, name), name
    internal = [name for name in dir(pipeline) if not name.startswith("_") and name not in pipeline.__all__]
    # what `import pipeline` shows beyond __all__ is only its own submodules, never a stray helper
    assert all(
        getattr(getattr(pipeline, name), "__name__", "").startswith("pipeline.") for name in internal
    ), internal


async def test_the_scheduled_task_example(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    files = make_tree(tmp_path / "recordings", 4)
    nightly = run_example(examples()[0])["nightly"]

    assert await nightly(sandbox.api_key, sandbox.api_url) == int(pipeline.ExitCode.OK)
    assert len(sandbox.jobs().jobs) == len(files)
    assert len(list((tmp_path / "transcripts").rglob("*.txt"))) == len(files)
    assert await nightly(sandbox.api_key, sandbox.api_url) == int(pipeline.ExitCode.OK)  # nothing twice
    assert len(sandbox.jobs().jobs) == len(files)


async def test_the_web_service_example(sandbox: Sandbox, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "audio", 3)
    settings = settings_for(sandbox, tmp_path / "l.db")
    app = run_example(examples()[1])["transcription_service"](settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        answer = await client.post("/transcribe", json=[str(f) for f in files] + [str(tmp_path / "nope.wav")])
        body = await answer.json()
    assert answer.status == 200
    assert (body["created"], body["failed"]) == (3, 0)
    outcomes = sorted(f["outcome"] for f in body["files"])
    assert outcomes == ["created", "created", "created", "rejected"]
    assert len(sandbox.jobs().jobs) == 3


async def test_a_stop_handle_ends_a_library_run_gracefully(sandbox: Sandbox, tmp_path: Path) -> None:
    """The stop hook the web service uses on shutdown: no new file after it, the run returns."""
    make_tree(tmp_path / "a", 40)
    stop = pipeline.StopHandle()
    seen: list[pipeline.FileResult] = []

    def on_result(result: pipeline.FileResult) -> None:
        seen.append(result)
        if len(seen) == 5:
            stop.stop("enough")

    settings = settings_for(sandbox, tmp_path / "l.db", concurrency=2)
    stats = await pipeline.submit([str(tmp_path / "a")], settings, on_result=on_result, stop=stop)
    assert stats.interrupted == "enough"
    assert 5 <= stats.created < 40
    await anyio.lowlevel.checkpoint()
