"""The exit codes are documented once: `ExitCode.meaning`. The README's table and the epilog of
`slng-bulk --help` must say exactly the same, so that a cron wrapper written from either is right."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.errors import ExitCode
from tests.support.runs import run_cli

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_table() -> dict[int, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*(.+?)\s*\|\s*$", section, re.MULTILINE)
    return {int(code): meaning.replace("\\|", "|") for code, meaning in rows}


def help_table() -> dict[int, str]:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("Exit codes:", 1)[1]
    return {
        int(code): meaning for code, meaning in re.findall(r"^\s+(\d+)  (.+?)\s*$", section, re.MULTILINE)
    }


def test_readme_help_and_code_agree() -> None:
    from_code = {int(code): code.meaning for code in ExitCode}
    assert sorted(from_code) == list(range(12))
    assert readme_table() == from_code
    assert help_table() == from_code
