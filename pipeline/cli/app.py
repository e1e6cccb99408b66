"""The `slng-bulk` command: a thin layer over the library.

Options are generated from `pipeline.config.settings.Settings` (see `pipeline.cli.options`), so every
flag is also an environment variable (shown in `--help`) and a config-file key. Errors become one
line on stderr and a documented exit code, never a traceback. Each command lives in the module of
its group; this one only assembles them.
"""

from __future__ import annotations

import click

from pipeline.cli.fleet import enqueue, work
from pipeline.cli.follow import fetch, reconcile, status
from pipeline.cli.report import report
from pipeline.cli.running import SlngBulkGroup
from pipeline.cli.sandbox import sandbox
from pipeline.cli.submit import retry_failed, submit
from pipeline.errors import ExitCode
from pipeline.version import __version__


def _exit_code_epilog() -> str:
    """The exit-code table, from `ExitCode` itself (the README carries the same table; a test
    compares the three). `\b` keeps click from re-wrapping it."""
    rows = [f"  {int(code):>2}  {code.meaning}" for code in ExitCode]
    return "\b\nExit codes:\n" + "\n".join(rows)


@click.group(
    cls=SlngBulkGroup,
    epilog=_exit_code_epilog(),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, prog_name="slng-bulk")
def main() -> None:
    """Push large batches of audio into the SLNG Batch transcription API."""


for _command in (submit, enqueue, work, status, fetch, retry_failed, reconcile, report, sandbox):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["main"]
