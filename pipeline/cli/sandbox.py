"""`sandbox`: the local API emulator in the foreground, forwarded to the sandbox's own command.

The CLI imports nothing of the sandbox (nor botocore) until this command runs, so a production
install without the `sandbox` extra still has a working CLI.
"""

from __future__ import annotations

import click

from pipeline.cli.running import fail
from pipeline.errors import SlngBulkError


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def sandbox(arguments: tuple[str, ...]) -> None:
    """Run the local SLNG Batch API emulator (API + strict S3) in the foreground. Needs the optional
    extra: pip install 'slng-bulk[sandbox]'. `slng-bulk sandbox --help` lists its options."""
    try:
        from pipeline.sandbox.command import sandbox_command
    except SlngBulkError as exc:  # SandboxExtraMissing: botocore is not installed
        fail(exc)
    sandbox_command.main(list(arguments), prog_name="slng-bulk sandbox")
