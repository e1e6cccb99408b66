"""Live progress: a one-line bar on a terminal, periodic plain or JSON lines in logs and cron mail.

The bar's line is `observe.glance`'s fields fitted to the terminal's width as it is now (measured
at each refresh, so a resized tmux pane is followed): the least useful fields are dropped first and
the line never wraps. rich is imported only when a bar is shown: a run in cron, CI or a pipe never
needs it, and loading it is a noticeable part of the command's start-up.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio

from pipeline.logs import log
from pipeline.observe.glance import files_total_text, fit, glance, line_text
from pipeline.observe.pace import Pace, PaceMeter
from pipeline.observe.stats import RunStats, human_bytes, slowed_rates_text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live

Mode = Literal["auto", "bar", "lines", "none"]


class _BarLine:
    """The rich renderable of the bar's line: fitted to the width rich offers at each refresh."""

    def __init__(self, display: ProgressDisplay) -> None:
        self.display = display

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        view = glance(self.display.stats, self.display.pace)
        shown, bar_width = fit(view.fields, options.max_width)
        text = Text(line_text(shown), no_wrap=True, overflow="crop")
        if not bar_width:
            yield text
            return
        row = Table.grid(padding=(0, 1))
        row.add_column(width=bar_width, no_wrap=True)
        row.add_column(no_wrap=True)
        row.add_row(ProgressBar(total=1.0, completed=view.fraction, width=bar_width), text)
        yield row


class ProgressDisplay:
    """Reads `RunStats` on a timer; never touches the pipeline's state."""

    def __init__(self, stats: RunStats, mode: Mode, interval: float, log_format: str) -> None:
        if mode == "auto":  # JSON lines stay JSON lines, on a terminal too
            mode = "bar" if sys.stderr.isatty() and log_format != "json" else "lines"
        self.mode = mode
        self.stats = stats
        self.interval = interval
        self.log_format = log_format
        self._live: Live | None = None
        self._meter = PaceMeter()
        self.pace = Pace(None, None)

    def __enter__(self) -> ProgressDisplay:
        if self.mode == "bar":
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                _BarLine(self),
                console=Console(stderr=True),
                auto_refresh=False,
                transient=False,
            )
            self._live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self.refresh()
            self._live.stop()

    async def run(self) -> None:
        """Refresh until cancelled."""
        if self.mode == "none":
            return
        period = 0.25 if self.mode == "bar" else self.interval
        while True:
            await anyio.sleep(period)
            self.refresh()

    def counts_text(self) -> str:
        s = self.stats
        text = (
            f"{files_total_text(s)}: {s.created + s.already_created} created, {s.in_flight} in flight, "
            f"{s.failed} failed, {s.rejected} rejected, {s.skipped_done} skipped"
        )
        if s.retries:
            text += f", {s.retries} retries"
        slowed = slowed_rates_text(s.rates)
        return f"{text}; slowed by the server: {slowed}" if slowed else text

    def refresh(self) -> None:
        s = self.stats
        # Bytes as they go (a long recording's PUT counts before it ends), as the line shows them.
        self.pace = self._meter.sample(s.finished, s.bytes_moving)
        if self._live is not None:
            self._live.refresh()
            return
        if self.mode != "lines":
            return
        elapsed = max(s.elapsed, 1e-6)
        if self.log_format == "json":
            log.info("progress", extra={"fields": self.progress_fields(elapsed)})
        else:
            log.info(
                "progress: %s; %s uploaded (%s/s); %.0f s",
                self.counts_text(),
                human_bytes(s.bytes_sent),
                human_bytes(s.bytes_sent / elapsed),
                elapsed,
            )

    def progress_fields(self, elapsed: float) -> dict[str, Any]:
        s = self.stats
        return {
            "event": "progress",
            "files_done": s.files_done,
            "files_known": s.files_known,
            "sources_read": s.sources_read,
            "created": s.created + s.already_created,
            "in_flight": s.in_flight,
            "failed": s.failed,
            "rejected": s.rejected,
            "skipped": s.skipped_done,
            "bytes_sent": s.bytes_sent,
            "bytes_per_second": round(s.bytes_sent / elapsed),
            "elapsed_seconds": round(elapsed, 1),
            "retries": s.retries,
            "represigns": s.represigns,
            "rates": {name: dict(view) for name, view in s.rates.items()},
        }
