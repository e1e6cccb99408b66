"""A ledger made by the release before identity left labels out (7009f99) is re-keyed on open, in
SQLite and PostgreSQL: its finished files are found under their new identity with their old job ids,
and later job ids still derive from the old key. The old ledger is written by that commit's own code,
taken from the repository's history, in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.api.models import Tracking, TranscriptionConfig
from pipeline.ledger import FileState, open_ledger
from pipeline.sources.identity import file_key
from pipeline.sources.rows import FileSpec, JobSettings
from tests.support.history import old_checkout, run_old_code

pytestmark = pytest.mark.anyio
RELEASE = "7009f99"  # identity by all the settings, tracking included
WRITE_OLD = """
import anyio, sys
from pathlib import Path
from pipeline.api.models import Tracking, TranscriptionConfig
from pipeline.ledger import open_ledger
from pipeline.sources.identity import file_key
from pipeline.sources.rows import FileSpec, JobSettings
def spec(name, language, tags):
    path = Path(sys.argv[2]) / name
    st = path.stat()
    settings = JobSettings(
        transcription_config=TranscriptionConfig(language=language),
        tracking=Tracking(tags=tags) if tags else None,
    )
    return FileSpec("m.csv", 2, path, st.st_size, st.st_mtime_ns, None, settings, name)
async def main():
    async with open_ledger(sys.argv[1]) as ledger:
        for name, language, tags, job_id, done in (
            ("a.wav", "en", ["batch6"], "oldjob1", True),
            ("a.wav", "en", None, "oldjob2", False),  # the same recognition, an older untagged row
            ("b.wav", "fr", None, "oldjob3", True),
        ):
            row = spec(name, language, tags)
            admitted = await ledger.admit(row, file_key(row), job_id, "r0")
            if done:
                await ledger.mark_created(admitted.record)
        await ledger.flush()
anyio.run(main)
"""


def new_spec(folder: Path, name: str, language: str, tags: list[str] | None) -> FileSpec:
    path = folder / name
    st = path.stat()
    settings = JobSettings(
        transcription_config=TranscriptionConfig(language=language),
        tracking=Tracking(tags=tags) if tags else None,
    )
    return FileSpec("m.csv", 2, path, st.st_size, st.st_mtime_ns, None, settings, name)


async def test_an_upgraded_ledger_finds_its_done_files_whatever_their_labels(
    ledger_target: str, tmp_path: Path
) -> None:
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"RIFF0000WAVEdata" + name.encode())
    run_old_code(old_checkout(tmp_path, RELEASE), WRITE_OLD, ledger_target, str(tmp_path))

    tagged = new_spec(tmp_path, "a.wav", "en", ["batch7"])
    french = new_spec(tmp_path, "b.wav", "fr", None)
    async with open_ledger(ledger_target) as ledger:
        known = ledger.glance([file_key(tagged), file_key(french)])
        records = {record.job_id: record for record in ledger.records()}
    assert known[file_key(tagged)].state is FileState.CREATED
    assert known[file_key(tagged)].job_id == "oldjob1"  # the created row wins the shared identity
    assert known[file_key(tagged)].settings_hash != tagged.settings.settings_hash()  # new label, seen
    assert known[file_key(french)].job_id == "oldjob3"
    assert set(records) == {"oldjob1", "oldjob2", "oldjob3"}
    winner, loser = records["oldjob1"], records["oldjob2"]
    assert winner.job_seed is not None and winner.id_seed != winner.file_key  # later ids: old seed
    assert loser.file_key != winner.file_key and loser.job_seed is None
