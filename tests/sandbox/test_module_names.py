"""The sandbox's module names say what each holds, and none repeats another module's name."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pipeline

PACKAGE = Path(pipeline.__file__).resolve().parent
SANDBOX = PACKAGE / "sandbox"


def test_no_two_modules_of_the_package_share_a_name() -> None:
    """Except one deliberate mirror: a command's parsing and printing (cli/X.py) beside its
    orchestration, which is also the library's (commands/X.py)."""
    modules = [p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    names = Counter(
        p.name for p in modules if not (p.parent.name == "cli" and (PACKAGE / "commands" / p.name).exists())
    )
    assert [name for name, count in names.items() if count > 1] == []


def _imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}


def test_presign_step_one_lives_apart_from_job_creation() -> None:
    assert "PresignRequest" not in _imported_names(SANDBOX / "create.py")
    assert {"PresignRequest", "PresignResponse"} <= _imported_names(SANDBOX / "presign.py")
