"""`--wait` says what it waits for in prose, not as a Python dict."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from pipeline.commands.connect import connect
from pipeline.follow.common import counts_text
from pipeline.follow.polling import wait_for_jobs
from pipeline.logs import LOGGER_NAME
from pipeline.sandbox import Sandbox, SandboxConfig
from tests.support.audio import make_tree
from tests.support.runs import run_submit, settings_for

pytestmark = pytest.mark.anyio


def test_counts_read_as_words_biggest_first() -> None:
    assert counts_text({"QUEUED": 5}) == "QUEUED 5"
    assert counts_text({"DONE": 1, "QUEUED": 3, "IN_PROGRESS": 3}) == "IN_PROGRESS 3, QUEUED 3, DONE 1"
    assert counts_text({}) == "none"


async def test_the_wait_log_line_is_prose(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_tree(tmp_path / "in", 3)
    ledger = tmp_path / "l.db"
    async with Sandbox(SandboxConfig(job_step_seconds=60)).run() as sb:  # nothing finishes meanwhile
        await run_submit(sb, [tmp_path / "in"], ledger)
        caplog.set_level(logging.INFO, logger=LOGGER_NAME)
        async with connect(settings_for(sb, ledger)) as conn:
            report = await wait_for_jobs(conn.ledger, conn.client, conn.policy, 0.3, first_interval=0.1)
    assert report.open_jobs == 3
    waiting = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting for")]
    assert waiting and waiting[0] == "waiting for 3 open jobs (QUEUED 3)"
    assert not any(re.search(r"[{}'\[\]]", line) for line in waiting)
