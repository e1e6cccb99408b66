"""`report` carries what the server said and where fetch put the transcripts, in every format, and
`--state failed` takes in the jobs that FAILED on the server (the ledger's state for them is
`created`: the job exists)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from pipeline.sandbox import Sandbox
from tests.support.audio import make_tree
from tests.support.env import isolate
from tests.support.runs import run_cli, run_submit

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def all_files(paths: list[str]) -> bool:
    return all(Path(p).is_file() for p in paths)


def report(ledger: Path, *args: str) -> str:
    done = run_cli("report", "--ledger", str(ledger), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_report_has_server_status_message_and_transcript_paths(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    good = make_tree(tmp_path / "in", 2)
    bad = tmp_path / "in" / "broken.wav"
    bad.write_bytes(b"this is not audio, just text pretending\n" * 50)
    ledger, out = tmp_path / "l.db", tmp_path / "out"
    await run_submit(sandbox, [tmp_path / "in"], ledger, wait=True, out=out, formats=["json", "txt"])

    rows = {row["path"]: row for row in map(json.loads, report(ledger, "--format", "jsonl").splitlines())}
    for path in good:
        row = rows[str(path)]
        assert (row["state"], row["server_status"], row["server_message"]) == ("created", "DONE", None)
        stem = out / path.relative_to(tmp_path / "in")
        assert row["transcripts"] == [f"{stem}.json", f"{stem}.txt"]
        assert all_files(row["transcripts"])
    failed = rows[str(bad)]
    assert (failed["state"], failed["server_status"]) == ("failed", "FAILED")
    assert "could not be decoded" in failed["server_message"] and failed["transcripts"] == []

    only_failed = [
        json.loads(line) for line in report(ledger, "--format", "jsonl", "--state", "failed").splitlines()
    ]
    assert [row["path"] for row in only_failed] == [str(bad)]
    created = report(ledger, "--format", "json", "--state", "created")
    assert {row["path"] for row in json.loads(created)} == {str(p) for p in good}

    table = list(csv.DictReader(io.StringIO(report(ledger))))
    cells = {row["path"]: row for row in table}
    assert cells[str(bad)]["server_message"] == failed["server_message"]
    assert cells[str(good[0])]["transcripts"] == ";".join(rows[str(good[0])]["transcripts"])

    story = json.loads(report(ledger, "--path", str(good[0]), "--format", "json"))
    assert story["files"][0]["transcripts"] == rows[str(good[0])]["transcripts"]
    text = report(ledger, "--path", str(good[0]))
    assert f"transcript {rows[str(good[0])]['transcripts'][0]}" in text
