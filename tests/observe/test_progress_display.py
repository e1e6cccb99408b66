"""rich is loaded only for a progress bar: a run under cron, in CI or with --progress lines/none
does not pay for importing it (about a tenth of the command's start-up)."""

from __future__ import annotations

import json
import subprocess
import sys

from pipeline.observe.progress import ProgressDisplay
from pipeline.observe.stats import RunStats


def test_the_run_machinery_does_not_import_rich() -> None:
    code = (
        "import sys, json\n"
        "import pipeline, pipeline.cli.app, pipeline.flow.pool, pipeline.flow.commands, pipeline.flow.work\n"
        "import pipeline.observe.progress\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'rich')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_a_bar_still_shows_and_stops() -> None:
    stats = RunStats(run_id="t")
    with ProgressDisplay(stats, "bar", 1.0, "text") as display:
        stats.bytes_total = 100
        display.refresh()
        assert display.mode == "bar"
    assert "rich.progress" in sys.modules
