"""`--shard I/N`: the shards of a manifest partition it, the same way on every run."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from pipeline.api.models import TranscriptionConfig
from pipeline.sources.readers import iter_rows
from pipeline.sources.rows import FileSpec, JobSettings, Rejection, Row
from pipeline.sources.shard import Shard, shard_key
from tests.support.audio import make_tree

DEFAULTS = JobSettings(transcription_config=TranscriptionConfig(language="en"))


def manifest_rows(tmp_path: Path, count: int) -> list[Row]:
    """A CSV manifest over `count` real files plus two bad rows (one missing file, one without path)."""
    files = make_tree(tmp_path / "audio", count)
    lines = ["path", *(str(f) for f in files), str(tmp_path / "gone.wav"), ""]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return list(iter_rows([str(manifest)], DEFAULTS))


@pytest.mark.parametrize("text", ["1/1", "3/4", " 2 / 4 ", "7/7"])
def test_parse_accepts_i_of_n(text: str) -> None:
    shard = Shard.parse(text)
    assert 1 <= shard.index <= shard.count
    assert Shard.parse(str(shard)) == shard


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "-1/2", "a/b", "4", "1/2/3", "", "1.5/2"])
def test_parse_refuses_anything_else_naming_the_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"--shard takes I/N with 1 <= I <= N"):
        Shard.parse(text)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_the_shards_partition_a_manifest(tmp_path: Path, count: int) -> None:
    rows = manifest_rows(tmp_path, 120)
    assert sum(isinstance(r, Rejection) for r in rows) >= 1
    shards = [list(Shard(i, count).select(rows)) for i in range(1, count + 1)]
    placed = collections.Counter(id(row) for shard in shards for row in shard)
    assert set(placed) == {id(row) for row in rows}, "every row is in some shard"
    assert set(placed.values()) == {1}, "no row is in two shards"
    if count > 1:
        assert all(shard for shard in shards), "120 files leave no shard empty"


def test_a_rerun_places_every_row_in_the_same_shard(tmp_path: Path) -> None:
    first = [shard_key(r) for r in Shard(2, 3).select(manifest_rows(tmp_path, 60))]
    again = [shard_key(r) for r in Shard(2, 3).select(manifest_rows(tmp_path, 60))]
    assert first == again and first


def test_the_split_is_pinned_to_blake2b_of_the_path() -> None:
    """Changing the hash would move files between the shards of runs already under way."""
    assert [Shard(1, 1000).number_of(p) for p in ("/data/a.wav", "/data/b.wav")] == [757, 287]


def test_a_file_keeps_its_shard_when_its_size_mtime_or_settings_change(tmp_path: Path) -> None:
    spec = next(r for r in manifest_rows(tmp_path, 1) if isinstance(r, FileSpec))
    changed = FileSpec(
        spec.source,
        spec.line,
        spec.path,
        spec.size + 1,
        spec.mtime_ns + 1,
        spec.job_id,
        JobSettings(transcription_config=TranscriptionConfig(language="de")),
        spec.relative_path,
    )
    for count in (2, 5, 11):
        assert Shard(1, count).number_of(shard_key(spec)) == Shard(1, count).number_of(shard_key(changed))


def test_a_row_without_a_path_is_placed_by_source_and_line() -> None:
    a = Rejection("m.csv", 3, None, "no path")
    b = Rejection("m.csv", 4, None, "no path")
    assert shard_key(a) != shard_key(b)
    assert sum(Shard(i, 4).owns(a) for i in range(1, 5)) == 1


def test_the_split_is_roughly_even() -> None:
    keys = [f"/data/calls/{i:06d}.wav" for i in range(4000)]
    sizes = collections.Counter(Shard(1, 4).number_of(k) for k in keys)
    assert set(sizes) == {1, 2, 3, 4}
    assert all(800 <= n <= 1200 for n in sizes.values()), sizes
