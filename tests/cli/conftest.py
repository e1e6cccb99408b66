"""Every test here starts in its own folder, with no SLNG_* setting of the caller's shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.env import isolate


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)
