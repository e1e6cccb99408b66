"""`--path-map FROM=TO`: recorded paths rewritten by whole-component prefixes, longest first."""

from __future__ import annotations

import pytest

from pipeline.sources.pathmap import PathMap


@pytest.mark.parametrize(
    ("recorded", "local"),
    [
        ("/mnt/nas/a.wav", "/data/nas/a.wav"),
        ("/mnt/nas/deep/er/b.wav", "/data/nas/deep/er/b.wav"),
        ("/mnt/nas", "/data/nas"),
        ("/mnt/nas2/a.wav", "/mnt/nas2/a.wav"),  # not a whole component: unchanged
        ("/mnt/nas/special/c.wav", "/fast/c.wav"),  # the longer FROM wins
        ("/elsewhere/d.wav", "/elsewhere/d.wav"),
    ],
)
def test_prefixes_are_rewritten_by_whole_components(recorded: str, local: str) -> None:
    path_map = PathMap.parse(["/mnt/nas=/data/nas", "/mnt/nas/special/=/fast"])
    assert path_map.local(recorded) == local


def test_the_root_can_be_mapped() -> None:
    assert PathMap.parse(["/=/srv/mirror"]).local("/a/b.wav") == "/srv/mirror/a/b.wav"


def test_trailing_slashes_and_dots_do_not_matter() -> None:
    assert PathMap.parse(["/mnt/./nas/=/data/nas/"]).local("/mnt/nas/a.wav") == "/data/nas/a.wav"


def test_no_map_changes_nothing() -> None:
    empty = PathMap.parse([])
    assert not empty
    assert empty.local("/mnt/nas/a.wav") == "/mnt/nas/a.wav"


@pytest.mark.parametrize("spec", ["/mnt/nas", "=/data", "/mnt/nas=", "relative=/data", "/mnt=rel", ""])
def test_a_malformed_rule_is_refused_naming_the_form(spec: str) -> None:
    with pytest.raises(ValueError, match=r"--path-map takes FROM=TO"):
        PathMap.parse([spec])


def test_one_prefix_mapped_two_ways_is_refused() -> None:
    with pytest.raises(ValueError, match=r"maps /mnt/nas twice"):
        PathMap.parse(["/mnt/nas=/a", "/mnt/nas/=/b"])
    assert PathMap.parse(["/mnt/nas=/a", "/mnt/nas/=/a"]).local("/mnt/nas/x") == "/a/x"
