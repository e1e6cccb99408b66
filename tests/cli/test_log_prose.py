"""Log lines are prose: no Python reprs of dicts, lists, tuples, enums or quoted strings.

A small but eventful submit (rejected rows of several kinds, transient faults and retries, a job
that FAILS, waiting, fetching, a key given twice) runs through the real command line against the
sandbox; every line it writes to stderr is checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.sandbox import FaultPlan, Sandbox, SandboxConfig
from pipeline.sources.rows import QUOTE_CHARS, quote
from tests.support.audio import make_tree
from tests.support.runs import run_cli

REPR_ARTEFACTS = re.compile(r"[{}\[\]<>']")
FAULTS = {
    "operations": {
        "presign": {"errors": [{"status": 503, "nth": [1]}]},
        "create": {
            "errors": [{"status": 429, "nth": [2], "retry_after": 0.1}],
            "lost_response": {"nth": [3]},
        },
        "put": {"reset": {"after_bytes": 16, "nth": [2]}},
        "get": {"errors": [{"status": 502, "nth": [1]}]},
    }
}


@pytest.fixture
def faulty_sandbox() -> Iterator[Sandbox]:
    config = SandboxConfig(job_step_seconds=0.05, faults=FaultPlan.model_validate(FAULTS))
    with Sandbox(config).run_in_thread() as sb:
        yield sb


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_small_eventful_submit_logs_prose(faulty_sandbox: Sandbox, tmp_path: Path, log_format: str) -> None:
    make_tree(tmp_path / "in", 4)
    (tmp_path / "in" / "broken.wav").write_bytes(b"this is not audio, just text pretending\n" * 50)
    (tmp_path / "m.csv").write_text(
        "path,language,diarization,job_id,model_code\n"
        "in/d0/f00000.wav,en,loud,,\n"  # a bad enum value
        "ghost.wav,,,,\n"  # a missing file
        "in/d1/f00001.wav,,,,\n"  # a duplicate of the directory's row
        "in/d2/f00002.wav,,,not-valid!,\n"  # a bad job_id
        "in/d3/f00003.wav,,,,nope/model\n"  # an unknown model
        "notes.txt,,,,\n"  # an unsupported extension
    )
    (tmp_path / "notes.txt").write_text("not audio\n")
    env = {
        "SLNG_API_KEY": faulty_sandbox.api_key,
        "SLNG_BULK_API_KEY": "sk-some-other-key-0123",  # both set and differing: a warning
        "SLNG_BULK_API_URL": faulty_sandbox.api_url,
    }
    result = run_cli(
        "submit",
        "in",
        "m.csv",
        "--wait",
        "--out",
        "out",
        "-v",
        "--log-format",
        log_format,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == ExitCode.FAILED, result.stderr  # the broken file's job FAILED
    lines = result.stderr.splitlines()
    assert sum("rejected" in line for line in lines) >= 6, result.stderr
    assert any("both set and differ" in line for line in lines)
    assert any("waiting for" in line for line in lines), result.stderr
    messages = [json.loads(line)["message"] if line.startswith("{") else line for line in lines]
    offending = [message for message in messages if REPR_ARTEFACTS.search(message)]
    assert offending == [], "reprs in log lines:\n" + "\n".join(offending)


def test_user_values_are_quoted_as_prose_and_still_escaped() -> None:
    assert quote("loud") == '"loud"'
    assert quote('a"b\\c\x00\u202ed\n') == '"a\\"b\\\\c\\x00\\u202ed\\n"'
    assert quote("x" * 100) == '"' + "x" * QUOTE_CHARS + '"...'
    assert quote(["a", 1]) == '["a", 1]'  # a non-string is JSON, as the row gave it
