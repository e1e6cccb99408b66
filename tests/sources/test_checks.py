"""Row checks that need an unprivileged process (root reads everything)."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.api.models import AUDIO_EXTENSIONS
from pipeline.sources.checks import _audio_extension_quick, _posix_extension, _row_path, root_prefix
from pipeline.sources.readers import (
    ManifestError,
    check_sources,
)
from pipeline.sources.rows import Rejection
from tests.sources.helpers import audio, rows, run_unprivileged, write

# --- permissions (needs an unprivileged process: root reads everything) --------------------------------


def test_unreadable_file_and_directory(shared_dir: Path) -> None:
    for rel in ("good1.wav", "secret.wav", "good2.wav", "locked/x.wav"):
        audio(shared_dir, rel).chmod(0o644)
    (shared_dir / "secret.wav").chmod(0o000)
    (shared_dir / "locked").chmod(0o000)
    manifest = write(shared_dir / "m.csv", "path\ngood1.wav\nsecret.wav\nlocked/x.wav\ngood2.wav\n")
    manifest.chmod(0o644)

    def job() -> list[str]:
        result = rows(manifest) + rows(shared_dir)
        return [r.message() if isinstance(r, Rejection) else f"OK {r.relative_path}" for r in result]

    assert run_unprivileged(job) == [
        "OK good1.wav",
        f"{manifest}:3: {shared_dir / 'secret.wav'}: permission denied (not readable)",
        f"{manifest}:4: {shared_dir / 'locked/x.wav'}: permission denied",
        "OK good2.wav",
        "OK good1.wav",
        "OK good2.wav",
        f"{shared_dir}: {shared_dir / 'locked'}: cannot read directory: permission denied",
        f"{shared_dir}: {shared_dir / 'secret.wav'}: permission denied (not readable)",
    ]


def test_unreadable_manifest_is_a_manifest_error(shared_dir: Path) -> None:
    manifest = write(shared_dir / "m.jsonl", "{}\n")
    manifest.chmod(0o000)

    def job() -> list[str]:
        messages = []
        for check in (lambda: check_sources([str(manifest)]), lambda: rows(manifest)):
            try:
                check()
            except ManifestError as exc:
                messages.append(str(exc))
        return messages

    expected = f"{manifest}: cannot open manifest: permission denied"
    assert run_unprivileged(job) == [expected, expected]


def test_readability_follows_the_mode_bits_that_apply_to_us(shared_dir: Path) -> None:
    """Owner bits for the owner, else group, else other: a bit for someone else grants nothing.

    The check reads the mode from the one stat and asks os.access only when the mode alone does
    not say the file is readable; each case here is one where a shortcut would go wrong.
    """
    modes = {"all.wav": 0o444, "other.wav": 0o604, "group_only.wav": 0o640}
    mine = {"own.wav": 0o400, "own_none.wav": 0o044}
    for name, mode in {**modes, **mine}.items():
        audio(shared_dir, name).chmod(mode)
    if os.geteuid() == 0:
        for name in mine:
            os.chown(shared_dir / name, 65534, 65534)
    names = [*modes, *mine]
    manifest = write(shared_dir / "m.csv", "path\n" + "".join(f"{n}\n" for n in names))
    manifest.chmod(0o644)

    def job() -> list[str]:
        return [r.message() if isinstance(r, Rejection) else f"OK {r.relative_path}" for r in rows(manifest)]

    if os.geteuid() != 0:
        pytest.skip("needs root to give files to another user")
    denied = "permission denied (not readable)"
    assert run_unprivileged(job) == [
        "OK all.wav",
        "OK other.wav",
        f"{manifest}:4: {shared_dir / 'group_only.wav'}: {denied}",
        "OK own.wav",
        f"{manifest}:6: {shared_dir / 'own_none.wav'}: {denied}",
    ]


@settings(max_examples=500, deadline=None)
@given(path=st.text(alphabet="./aW", max_size=12))
def test_the_inline_extension_is_splitexts(path: str) -> None:
    assert _posix_extension(path) == posixpath.splitext(path)[1]


@settings(max_examples=1000, deadline=None)
@given(cell=st.text(alphabet="./aW", min_size=1, max_size=12), root=st.sampled_from(["/", "/r", "/r/s.d"]))
def test_the_row_path_is_normpath_of_the_join(cell: str, root: str) -> None:
    assert _row_path(cell, root_prefix(root)) == posixpath.normpath(posixpath.join(root, cell))


@settings(max_examples=1000, deadline=None)
@given(path=st.text(alphabet="./aWV", max_size=12).map(lambda t: t.replace("V", "wav")))
def test_the_quick_extension_accept_agrees_with_splitext(path: str) -> None:
    if _audio_extension_quick(path):
        assert posixpath.splitext(path)[1][1:].lower() in AUDIO_EXTENSIONS
