"""The shared ledger's claims: disjoint batches, leases that run out only for the dead, takeovers
recorded, and a worker that knows when its part is over. Against a real PostgreSQL server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from pipeline.errors import ErrorClass
from pipeline.ledger import FileState
from pipeline.ledger.leases import Leases, fleet_progress, takeovers
from pipeline.ledger.postgres import PostgresLedger, display_url
from pipeline.ledger.shared_rate import SharedRate
from pipeline.sources.identity import derive_job_id, file_key
from tests.ledger.conftest import make_spec

pytestmark = pytest.mark.anyio


@pytest.fixture
async def shared(postgres_url: str, anyio_backend: str) -> AsyncIterator[PostgresLedger]:
    async with PostgresLedger(postgres_url, host="host-a") as ledger:
        yield ledger


async def enqueue_files(ledger: PostgresLedger, folder: Path, count: int) -> list[str]:
    specs = [make_spec(folder, f"f{i:03d}.wav") for i in range(count)]
    rows = [(spec, file_key(spec), derive_job_id(file_key(spec))) for spec in specs]
    counts = await ledger.enqueue(rows, "enqueue-1")
    assert (counts.added, counts.known, counts.refused) == (count, 0, [])
    return [key for _spec, key, _job in rows]


async def test_enqueue_is_idempotent_and_refuses_a_job_id_owned_by_another_file(
    shared: PostgresLedger, tmp_path: Path
) -> None:
    await enqueue_files(shared, tmp_path, 5)
    again = make_spec(tmp_path, "f000.wav")
    stranger = make_spec(tmp_path, "other.wav")
    taken_job_id = derive_job_id(file_key(again))
    counts = await shared.enqueue(
        [(again, file_key(again), taken_job_id), (stranger, file_key(stranger), taken_job_id)], "enqueue-2"
    )
    assert (counts.added, counts.known) == (0, 1)
    assert [path for path, _why in counts.refused] == [str(stranger.path)]
    assert shared.count_by_state() == {"pending": 5}


async def test_two_workers_claiming_at_once_get_disjoint_files(
    shared: PostgresLedger, tmp_path: Path
) -> None:
    keys = await enqueue_files(shared, tmp_path, 40)
    workers = [Leases(shared, f"w{i}", lease_seconds=30) for i in range(4)]
    got: dict[str, list[str]] = {w.worker: [] for w in workers}

    async def drain(leases: Leases) -> None:
        while records := await leases.claim(3):
            got[leases.worker] += [r.file_key for r in records]

    async with anyio.create_task_group() as tg:
        for leases in workers:
            tg.start_soon(drain, leases)
    claimed = [key for keys_of in got.values() for key in keys_of]
    assert sorted(claimed) == sorted(keys), "every file claimed exactly once"
    assert sum(1 for keys_of in got.values() if keys_of) >= 2


async def test_a_dead_workers_leases_run_out_and_are_taken_over(
    shared: PostgresLedger, tmp_path: Path
) -> None:
    await enqueue_files(shared, tmp_path, 6)
    dead = Leases(shared, "dead", lease_seconds=0.5)
    alive = Leases(shared, "alive", lease_seconds=30)
    held = await dead.claim(4)
    assert len(held) == 4
    assert len(await alive.claim(10)) == 2, "live leases are not taken"
    assert await alive.others_unfinished() == 4  # the dead one's: waited for, in case it dies
    await anyio.sleep(0.7)
    taken = await alive.claim(10)
    assert sorted(r.id for r in taken) == sorted(r.id for r in held)
    assert sorted(takeovers(shared)) == sorted((r.id, "dead", "alive") for r in held)
    assert await dead.heartbeat() == 0, "the dead worker holds nothing any more"


async def test_a_heartbeat_keeps_a_lease(shared: PostgresLedger, tmp_path: Path) -> None:
    await enqueue_files(shared, tmp_path, 2)
    slow = Leases(shared, "slow", lease_seconds=0.6)
    other = Leases(shared, "other", lease_seconds=30)
    assert len(await slow.claim(2)) == 2
    for _ in range(4):
        await anyio.sleep(0.3)
        assert await slow.heartbeat() == 2
        assert await other.claim(2) == []


async def test_finished_files_are_never_claimed_and_a_failure_is_retried_once_by_a_later_worker(
    shared: PostgresLedger, tmp_path: Path
) -> None:
    await enqueue_files(shared, tmp_path, 3)
    first = Leases(shared, "first", lease_seconds=30)
    done, failed, gone = await first.claim(3)
    await shared.mark_created(done)
    await shared.mark_failed(failed, "HTTP 503", ErrorClass.TRANSIENT)
    await shared.mark_failed(gone, "HTTP 422", ErrorClass.PERMANENT)
    for record in (done, failed, gone):
        await first.release(record)
    assert await first.claim(3) == [], "a failure since this worker started is not its to retry"
    assert await first.others_unfinished() == 0, "so its part is over"
    later = Leases(shared, "later", lease_seconds=30)
    [retried] = await later.claim(3)
    assert (retried.id, retried.state) == (failed.id, FileState.FAILED)


async def test_two_hosts_admitting_the_same_file_at_once_share_one_record(
    postgres_url: str, tmp_path: Path, anyio_backend: str
) -> None:
    spec = make_spec(tmp_path)
    key = file_key(spec)
    results = []
    async with PostgresLedger(postgres_url, host="a") as one, PostgresLedger(postgres_url, host="b") as two:

        async def admit(ledger: PostgresLedger, run_id: str) -> None:
            results.append(await ledger.admit(spec, key, derive_job_id(key), run_id))

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(admit, one if i % 2 else two, f"run{i}")
    ids = {admission.record.id for admission in results if admission.record is not None}
    assert len(ids) == 1 and len(results) == 10


async def test_fleet_progress_by_host(shared: PostgresLedger, tmp_path: Path) -> None:
    await enqueue_files(shared, tmp_path, 4)
    leases = Leases(shared, "w1", lease_seconds=30)
    await leases.register()
    one, two, *_rest = await leases.claim(4)
    await shared.mark_created(one)
    await shared.mark_failed(two, "bad", ErrorClass.PERMANENT)
    [progress] = fleet_progress(shared)
    assert (progress.host, progress.workers_alive, progress.claimed, progress.done, progress.failed) == (
        "host-a",
        1,
        4,
        1,
        1,
    )
    assert progress.bytes_per_second > 0


def test_the_password_never_shows_in_the_ledgers_name() -> None:
    assert display_url("postgresql://me:s3cret@db:5432/l") == "postgresql://me:***@db:5432/l"
    assert display_url("postgresql://db/l") == "postgresql://db/l"


async def test_a_rate_shared_by_three_hosts_holds_for_all_of_them(
    postgres_url: str, anyio_backend: str
) -> None:
    """10 per second with a burst of 10: 30 requests from three hosts take at least 2 s together."""
    hosts = [PostgresLedger(postgres_url, host=f"h{i}") for i in range(3)]
    for ledger in hosts:
        await ledger.__aenter__()
    try:
        rates = [SharedRate(ledger, "create", 10.0) for ledger in hosts]
        started = time.monotonic()

        async def ten(rate: SharedRate) -> None:
            for _ in range(10):
                await rate.take()

        async with anyio.create_task_group() as tg:
            for rate in rates:
                tg.start_soon(ten, rate)
        elapsed = time.monotonic() - started
    finally:
        for ledger in hosts:
            await ledger.__aexit__(None, None, None)
    assert 1.9 <= elapsed < 4.0, elapsed
