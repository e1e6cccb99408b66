"""`python -m pipeline.sandbox`: the same as `slng-bulk sandbox`, but on free ports by default."""

from __future__ import annotations

from pipeline.cli.app import sandbox

if __name__ == "__main__":
    sandbox.main(prog_name="python -m pipeline.sandbox", default_map={"api_port": 0, "s3_port": 0})
