"""The benchmark's bulk ledger fill writes what the Ledger API would: the rerun bench measures a real ledger.

`tests.bench.populate_ledger` fills a ledger with one executemany per batch (the API takes minutes for
a million rows); a file filled either way must read back the same, so a rerun over it skips the same
files for the same reasons.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import anyio
import pytest

from pipeline.ledger.records import FileRecord
from pipeline.ledger.sqlite import SqliteLedger
from tests.bench import populate_ledger


def _records(path: Path) -> list[FileRecord]:
    """Records without the row ids and clock readings, which differ between two fills."""
    ledger = SqliteLedger(path)
    return [dataclasses.replace(r, id=0, created_at=None) for r in ledger.records()]


def _columns(path: Path) -> list[tuple[object, ...]]:
    """Every stored column but ids and times: the API fill sets them, the bulk fill must too."""
    conn = sqlite3.connect(path)
    try:
        names = [row[1] for row in conn.execute("PRAGMA table_info(files)")]
        kept = [n for n in names if n != "id" and not n.endswith("_at")]
        timed = [n for n in names if n.endswith("_at")]
        rows = conn.execute(f"SELECT {', '.join(kept)} FROM files ORDER BY path").fetchall()
        # a time is either set by both fills or by neither
        nulls = conn.execute(
            f"SELECT {', '.join(f'{n} IS NULL' for n in timed)} FROM files ORDER BY path"
        ).fetchall()
        runs = conn.execute("SELECT run_id, finished_at IS NULL, summary_json FROM runs").fetchall()
    finally:
        conn.close()
    return [*(tuple(r) + tuple(n) for r, n in zip(rows, nulls, strict=True)), *map(tuple, runs)]


@pytest.mark.parametrize("count", [1, 7])
def test_bulk_fill_matches_the_ledger_api(
    shared_dir: Path, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(shared_dir))
    for name in ("SLNG_BULK_LANGUAGE", "SLNG_BULK_TAGS"):
        monkeypatch.delenv(name, raising=False)
    audio = shared_dir / "audio"
    audio.mkdir()
    lines = ["path,language\n"]
    for i in range(count):
        (audio / f"a{i}.wav").write_bytes(b"RIFF0000WAVEdata" + bytes([i]) * (i + 1))
        lines.append(f"audio/a{i}.wav,{'fr' if i % 2 else ''}\n")
    manifest = shared_dir / "m.csv"
    manifest.write_text("".join(lines), encoding="utf-8")

    via_api, bulk = shared_dir / "api.db", shared_dir / "bulk.db"
    assert anyio.run(populate_ledger.populate, via_api, str(manifest)) == count
    assert populate_ledger.bulk_fill(bulk, str(manifest)) == count

    assert _records(bulk) == _records(via_api)
    assert _columns(bulk) == _columns(via_api)
    assert all(r.state.value == "created" for r in _records(bulk))
