"""No ledger read blocks the event loop: every command, run through the library against the sandbox,
with each synchronous read of the SQLite ledger made to fail when it is called on the loop's thread.

Reads on a worker thread (the producer's batched glance, `ledger.reads`) pass; a SQLite query, or
on a shared ledger a PostgreSQL round trip, made from a coroutine would stall every file in flight.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pipeline
from pipeline.ledger import SqliteLedger
from pipeline.sandbox import Sandbox
from tests.support.audio import make_tree
from tests.support.runs import settings_for

pytestmark = pytest.mark.anyio

READS = (
    "glance",
    "records",
    "rejections",
    "count_by_state",
    "history_job_ids",
    "renewed_not_created",
    "stories_at",
    "stories_of_job",
    "rejections_at",
)


class ReadOnLoop(AssertionError):
    pass


def _refuse_on_loop(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # a worker thread, or no event loop at all: a blocking read is fine here
    raise ReadOnLoop(f"SqliteLedger.{name} was called on the event loop's thread")


def _guarded(name: str, read: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(read)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _refuse_on_loop(name)
        result = read(*args, **kwargs)
        if isinstance(result, Iterator):
            return _guarded_iteration(name, result)
        return result

    return guarded


def _guarded_iteration(name: str, rows: Iterator[Any]) -> Iterator[Any]:
    """A streamed read runs its query as it is iterated: each step is checked too."""
    while True:
        _refuse_on_loop(name)
        try:
            item = next(rows)
        except StopIteration:
            return
        yield item


@pytest.fixture
def reads_refused_on_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in READS:
        monkeypatch.setattr(SqliteLedger, name, _guarded(name, getattr(SqliteLedger, name)))


async def test_the_guard_catches_a_read_on_the_loop(reads_refused_on_loop: None, tmp_path: Path) -> None:
    """The check itself: a read made from a coroutine is refused, the same read off the loop is not."""
    ledger = SqliteLedger(tmp_path / "l.db")
    async with ledger:
        with pytest.raises(ReadOnLoop):
            ledger.count_by_state()
        assert await ledger.reads.count_by_state() == {}


async def test_every_command_reads_the_ledger_off_the_event_loop(
    reads_refused_on_loop: None, sandbox: Sandbox, tmp_path: Path
) -> None:
    audio = tmp_path / "audio"
    files = make_tree(audio, 6)
    broken = audio / "broken.wav"
    broken.write_bytes(b"no audio container at all\n" * 40)  # its job ends FAILED on the server
    ledger = tmp_path / "l.db"
    settings = settings_for(sandbox, ledger, wait=True, out=tmp_path / "out", wait_timeout=30)

    stats = await pipeline.submit([str(audio)], settings)
    assert stats.created == len(files) + 1
    again = await pipeline.submit([str(audio)], settings_for(sandbox, ledger))  # the rerun's glance
    assert (again.skipped_done, again.failed) == (len(files), 1)  # the FAILED job is reported again

    status = await pipeline.status(settings)
    assert status.report.by_status["FAILED"] == 1
    waited = await pipeline.wait(settings)
    assert waited.statuses.open_jobs == 0
    fetched = await pipeline.fetch(settings)
    assert fetched.report.errors == []
    retried = await pipeline.retry_failed(settings_for(sandbox, ledger))
    assert retried.created == 1
    reconciled = await pipeline.reconcile([str(audio)], settings_for(sandbox, ledger))
    assert reconciled.report.unknown_on_server == []
    exported = [row async for row in pipeline.export(settings)]
    assert len(exported) == len(files) + 1
    history = await pipeline.history(settings, path=str(broken))
    assert history.files and history.files[0].jobs  # the job that failed, replaced by retry-failed
