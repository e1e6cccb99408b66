"""What a fresh interpreter loads when it imports some modules: for the tests that keep optional or
heavy dependencies (botocore, rich) out of paths that do not need them."""

from __future__ import annotations

import json
import subprocess
import sys


def loaded_after_importing(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    """The loaded modules named `prefix` or `prefix.*` for any of `prefixes`, after importing
    `modules` in a new interpreter (so nothing this test process loaded counts)."""
    code = (
        "import sys, json, importlib\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"prefixes = {prefixes!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if any(m == p or m.startswith(p + '.') for p in prefixes))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found: list[str] = json.loads(done.stdout)
    return found
