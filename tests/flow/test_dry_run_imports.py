"""A dry run (and --version) never needs the HTTP stack: it only reads and checks rows, so it does
not pay for importing aiohttp at start-up (a manifest's time to its first row)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pipeline
from tests.support.imports import loaded_after_importing


def test_the_cli_and_the_dry_run_load_no_http_client() -> None:
    modules = ["pipeline.cli.app", "pipeline.commands.dry_run"]
    assert loaded_after_importing(modules, ("aiohttp", "pipeline.commands.submit")) == []


def test_a_dry_run_command_loads_no_http_client(tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF....WAVEfmt ")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path\n{audio}\n", encoding="utf-8")
    code = (
        "import sys\n"
        "from pipeline.cli.app import main\n"
        "try:\n"
        f"    main(['submit', {str(manifest)!r}, '--dry-run', '--ledger', {str(tmp_path / 'l.db')!r}])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, 'aiohttp' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "0 False"


def test_the_library_still_offers_submit_and_submit_rows() -> None:
    from pipeline.commands.submit import submit, submit_rows

    assert pipeline.submit is submit and pipeline.submit_rows is submit_rows
    assert {"submit", "submit_rows"} <= set(pipeline.__all__) <= set(dir(pipeline))
