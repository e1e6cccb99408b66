"""`--log-format json`: every line on stderr is one JSON object, each file's outcome one event
with its path, manifest row, job and error, and the run ends with a `run_finished` event.

A whole command-line run against the sandbox with faults: 500s (retried), a rejected row, a file
whose upload is refused for good, and --concurrency 1 so that "in flight" can be checked against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ExitCode
from pipeline.sandbox import FaultPlan, Sandbox, SandboxConfig
from tests.support.audio import make_tree
from tests.support.runs import run_cli

FAULTS = {
    "operations": {
        "presign": {"errors": [{"status": 500, "nth": [1]}]},
        "create": {"errors": [{"status": 500, "nth": [2]}]},
        # the first PUT and the one on its fresh URL: that file fails for good (a permanent 403)
        "put": {"signature_mismatch": {"nth": [1, 2]}},
    }
}


@pytest.fixture
def faulty_sandbox() -> Iterator[Sandbox]:
    config = SandboxConfig(job_step_seconds=0.05, faults=FaultPlan.model_validate(FAULTS))
    with Sandbox(config).run_in_thread() as sb:
        yield sb


def run_json(sb: Sandbox, tmp_path: Path, *flags: str) -> tuple[int, list[dict[str, Any]]]:
    files = make_tree(tmp_path / "in", 5)
    rows = "".join(f"{f.relative_to(tmp_path)}\n" for f in files)
    (tmp_path / "m.csv").write_text("path\n" + rows + "ghost.wav\n")
    env = {"SLNG_API_KEY": sb.api_key, "SLNG_BULK_API_URL": sb.api_url}
    result = run_cli(
        "submit", "m.csv", "--ledger", "l.db", "--log-format", "json", "--concurrency", "1",
        "--progress", "lines", "--progress-interval", "0.02", *flags, env=env, cwd=tmp_path,
    )  # fmt: skip
    events = []
    for line in result.stderr.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line on stderr: {line!r}\n{result.stderr[-3000:]}")
    return result.returncode, events


@pytest.mark.slow
def test_every_stderr_line_is_json_with_one_event_per_file_and_a_run_finished(
    faulty_sandbox: Sandbox, tmp_path: Path
) -> None:
    code, events = run_json(faulty_sandbox, tmp_path)

    assert code == ExitCode.FAILED
    by_event: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_event.setdefault(event.get("event", ""), []).append(event)
    created, (failed,), (rejected,) = (
        by_event["file_created"],
        by_event["file_failed"],
        by_event["file_rejected"],
    )
    assert len(created) == 4
    for event in created:
        assert event["level"] == "info" and event["state"] == "created" and event["source"] == "m.csv"
        assert event["path"].endswith(".wav") and isinstance(event["row"], int) and event["job_id"]
    assert failed["level"] == "error" and failed["class"] == "permanent" and failed["state"] == "failed"
    assert failed["job_id"] and failed["row"] in range(2, 7) and "SignatureDoesNotMatch" in failed["error"]
    assert failed["earlier_run"] is False
    assert rejected["level"] == "warning" and rejected["row"] == 7 and rejected["path"].endswith("ghost.wav")
    assert rejected["class"] == "rejected" and "not found" in rejected["error"]
    assert rejected["state"] == "rejected"
    (finished,) = by_event["run_finished"]
    assert events[-1] is finished
    assert finished["exit_code"] == ExitCode.FAILED and finished["level"] == "warning"
    assert finished["counts"]["created"] == 4 and finished["counts"]["failed"] == 1
    assert finished["counts"]["rejected"] == 1 and finished["requests"]["retries"] >= 2
    progress = by_event["progress"]
    assert progress and max(p["in_flight"] for p in progress) <= 1  # never more than --concurrency
    assert all(p["files_done"] <= p["files_known"] <= 6 for p in progress)


@pytest.mark.slow
def test_quiet_keeps_the_summary_of_a_run_that_needs_a_look_and_very_quiet_only_errors(
    faulty_sandbox: Sandbox, tmp_path: Path
) -> None:
    code, events = run_json(faulty_sandbox, tmp_path, "-qq")
    assert code == ExitCode.FAILED
    assert {e["level"] for e in events} == {"error"}  # the failed file, nothing else
    assert [e["event"] for e in events] == ["file_failed"]
