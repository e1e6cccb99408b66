"""Live progress: a rich bar on a terminal, periodic plain or JSON lines in logs and cron mail.

rich is imported only when a bar is shown: a run in cron, CI or a pipe never needs it, and loading
it is a noticeable part of the command's start-up.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import anyio

from pipeline.logs import log
from pipeline.observe.stats import RunStats, human_bytes, slowed_rates_text

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

Mode = Literal["auto", "bar", "lines", "none"]


class ProgressDisplay:
    """Reads `RunStats` on a timer; never touches the pipeline's state."""

    def __init__(self, stats: RunStats, mode: Mode, interval: float, log_format: str) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode
        self.stats = stats
        self.interval = interval
        self.log_format = log_format
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[counts]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("upload", total=None, counts="")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self.refresh()
            self._progress.stop()

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
            f"{s.created + s.already_created} created, {s.in_flight} in flight, {s.failed} failed, "
            f"{s.rejected} rejected, {s.skipped_done} skipped"
        )
        if s.retries:
            text += f", {s.retries} retries"
        slowed = slowed_rates_text(s.rates)
        return f"{text}; slowed by the server: {slowed}" if slowed else text

    def refresh(self) -> None:
        s = self.stats
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                total=max(s.bytes_total, 1),
                completed=s.bytes_sent + s.bytes_in_flight,
                counts=self.counts_text(),
            )
            return
        if self.mode != "lines":
            return
        elapsed = max(s.elapsed, 1e-6)
        if self.log_format == "json":
            log.info(
                "progress",
                extra={
                    "fields": {
                        "event": "progress",
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
                },
            )
        else:
            log.info(
                "progress: %s; %s uploaded (%s/s); %.0f s",
                self.counts_text(),
                human_bytes(s.bytes_sent),
                human_bytes(s.bytes_sent / elapsed),
                elapsed,
            )
