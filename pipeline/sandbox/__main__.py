"""`python -m pipeline.sandbox`: the same as `slng-bulk sandbox`, but on free ports by default."""

from __future__ import annotations

from pipeline.sandbox.command import sandbox_command

if __name__ == "__main__":
    sandbox_command.main(prog_name="python -m pipeline.sandbox", default_map={"api_port": 0, "s3_port": 0})
