"""rich is loaded only for a progress bar: a run under cron, in CI or with --progress lines/none
does not pay for importing it (about a tenth of the command's start-up)."""

from __future__ import annotations

import sys

from pipeline.observe.progress import ProgressDisplay
from pipeline.observe.stats import RunStats
from tests.support.imports import loaded_after_importing


def test_the_run_machinery_does_not_import_rich() -> None:
    modules = ["pipeline", "pipeline.cli.app", "pipeline.flow.pool", "pipeline.commands.submit"]
    modules += ["pipeline.commands.fleet", "pipeline.observe.progress"]
    assert loaded_after_importing(modules, ("rich",)) == []


def test_a_bar_still_shows_and_stops() -> None:
    stats = RunStats(run_id="t")
    with ProgressDisplay(stats, "bar", 1.0, "text") as display:
        stats.bytes_total = 100
        display.refresh()
        assert display.mode == "bar"
    assert "rich.live" in sys.modules
