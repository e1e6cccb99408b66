"""The streaming PUT (pipeline/storage/upload.py) against the sandbox's own S3 over loopback.

Real parts only: a sandbox in the test's event loop, real presigned URLs, real files on disk,
aiohttp. A bandwidth cap (the client's --max-bandwidth or the sandbox S3's own trickle) makes the
upload slow enough for the test to change the file while it is being sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aiolimiter import AsyncLimiter

from pipeline.api.models import UploadTarget
from pipeline.errors import ErrorClass, FileChangedError, TransferError
from pipeline.ledger import FileState, SqliteLedger
from pipeline.sandbox import FaultPlan, Sandbox
from pipeline.storage.readahead import THREAD_PREFIX, ReadAhead
from pipeline.storage.upload import FileReads, ListedFile, PutRequest, UploadOptions, put_file
from tests.sandbox.helpers import presign
from tests.support.audio import write_wav
from tests.support.runs import objects_by_key, run_submit

pytestmark = pytest.mark.anyio

KiB = 1024
MiB = 1024 * KiB
READER_PREFIX = THREAD_PREFIX  # the name every read-ahead thread starts with


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        yield session


def random_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(READER_PREFIX)]


def open_fds_on(path: Path) -> list[str]:
    """This process's file descriptors open on `path` (Linux /proc)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                found.append(fd)
        except OSError:
            continue  # closed between listdir and readlink
    return found


def read_positions_on(path: Path) -> list[int]:
    """The file position of each of this process's descriptors open on `path`. The reader thread
    may close (and the fd number be reused) while we look: such a descriptor is skipped."""
    positions = []
    for fd in open_fds_on(path):
        try:
            with open(f"/proc/self/fdinfo/{fd}") as info:
                pos = int(info.readline().split()[1])
            if os.readlink(f"/proc/self/fd/{fd}") != str(path):
                continue  # closed and reused for another file meanwhile
        except OSError:
            continue  # closed meanwhile
        positions.append(pos)
    return positions


async def target_for(http: aiohttp.ClientSession, sb: Sandbox, name: str) -> UploadTarget:
    return (await presign(http, sb, filename=name)).upload


async def put(
    http: aiohttp.ClientSession,
    target: UploadTarget,
    path: Path,
    options: UploadOptions,
    progress: Callable[[int], None] | None = None,
    *,
    size: int | None = None,
) -> Any:
    st = os.stat(path)
    file = ListedFile(path, st.st_size if size is None else size, st.st_mtime_ns)
    return await put_file(http, PutRequest(target, file, options, progress=progress))


# --- what a multi-chunk upload delivers ---------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [64 * KiB, 1 * MiB], ids=["64KiB", "1MiB"])
async def test_a_large_file_arrives_whole_with_its_md5_and_every_byte_reported(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path, chunk_size: int
) -> None:
    path = random_file(tmp_path / "big.wav", 5 * MiB + 123)  # not a multiple of the chunk
    target = await target_for(http, sandbox, path.name)
    reported: list[int] = []

    result = await put(http, target, path, UploadOptions(chunk_size=chunk_size), reported.append)

    md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    assert result.md5 == md5 and result.bytes_sent == path.stat().st_size
    assert objects_by_key(sandbox)[target.s3_key] == md5
    assert sum(reported) == path.stat().st_size
    assert max(reported) <= chunk_size
    assert not reader_threads() and not open_fds_on(path)


# --- a file cut short while it is sent ----------------------------------------------------------


async def test_a_file_cut_short_mid_upload_raises_file_changed_not_a_connection_error(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    size, cut_at = 4 * MiB, 2 * MiB
    path = random_file(tmp_path / "cut.wav", size)
    target = await target_for(http, sandbox, path.name)
    sandbox.set_faults(FaultPlan(s3_bandwidth_bytes_per_second=4_000_000))
    taken = 0

    def progress(nbytes: int) -> None:
        nonlocal taken
        taken += nbytes
        if taken >= 512 * KiB and path.stat().st_size == size:
            os.truncate(path, cut_at)  # the read-ahead is at most a few chunks ahead of this

    with pytest.raises(FileChangedError, match="shrank"):
        await put(http, target, path, UploadOptions(chunk_size=128 * KiB), progress, size=size)
    assert target.s3_key not in objects_by_key(sandbox)
    assert not reader_threads() and not open_fds_on(path)


@pytest.mark.parametrize("cap", ["client --max-bandwidth", "S3 trickle"])
async def test_a_file_truncated_mid_upload_is_recorded_as_changed_and_not_retried(
    sandbox: Sandbox, tmp_path: Path, cap: str
) -> None:
    overrides: dict[str, Any] = {"chunk_size": 64 * KiB}
    if cap == "client --max-bandwidth":
        size, cut_to = 3 * MiB, 2 * MiB + 1000
        overrides["max_bandwidth"] = 1_000_000  # the first second's worth at once, then 1 MB/s
    else:
        # Loopback socket buffers take several MB before a slow server pushes back: a file well
        # past them, so the cut still lands ahead of what the client has read.
        size, cut_to = 32 * MiB, 28 * MiB
        sandbox.set_faults(FaultPlan(s3_bandwidth_bytes_per_second=8_000_000))
    path = random_file(tmp_path / "in" / "cut.wav", size)
    loop = asyncio.get_running_loop()
    arrived: list[str] = []

    def cut_soon(op: str, nth: int) -> None:
        arrived.append(op)
        if op == "put":  # the PUT has arrived: cut the file well ahead of what was sent by then
            loop.call_later(0.2, os.truncate, path, cut_to)

    sandbox.listen(on_arrival=cut_soon)

    stats = await run_submit(sandbox, [tmp_path / "in"], tmp_path / "l.db", **overrides)

    assert (stats.created, stats.failed, stats.changed) == (0, 0, 1)
    assert not stats.retry_classes, stats.retry_classes  # a changed file is not a transient failure
    assert arrived.count("put") == 1
    (row,) = SqliteLedger(tmp_path / "l.db").records(None)
    assert (row.state, row.error_class) == (FileState.FAILED, "changed")
    assert row.error is not None and "shrank" in row.error


def rewrite_while_presigning(sandbox: Sandbox, path: Path, **operations: Any) -> bytes:
    """Hold each presign 300 ms and rewrite `path` in place 100 ms into it, its size and mtime kept
    (no check could tell); `operations`: more of the sandbox's faults. Returns the bytes written."""
    stat = path.stat()
    original = path.read_bytes()
    later = original[:44] + bytes(len(original) - 44)  # the same header, silence after it
    loop = asyncio.get_running_loop()

    def rewrite() -> None:
        path.write_bytes(later)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def arrived(op: str, nth: int) -> None:
        if op == "presign":  # answered 300 ms from now: rewrite the file well before that
            loop.call_later(0.1, rewrite)

    plan = {"presign": {"latency": {"fixed_ms": 300}}, **operations}
    sandbox.set_faults(FaultPlan.model_validate({"operations": plan}))
    sandbox.listen(on_arrival=arrived)
    return later


async def test_a_small_file_is_read_while_its_presign_is_in_flight(sandbox: Sandbox, tmp_path: Path) -> None:
    """The read and hash of a file that fits one buffer start when the presign is sent, so the PUT
    does not wait for a thread hop once the URL is back: the bytes sent are those on disk then.
    (Rewritten in place with its size and mtime kept, as here, no check could tell; a change that
    moves either is still caught by the check after the PUT.)"""
    path = write_wav(tmp_path / "in" / "a.wav", seconds=0.1)
    original = path.read_bytes()
    later = rewrite_while_presigning(sandbox, path)

    stats = await run_submit(sandbox, [tmp_path / "in"], tmp_path / "l.db")

    assert (stats.created, stats.changed) == (1, 0)
    assert path.read_bytes() == later
    assert list(objects_by_key(sandbox).values()) == [
        hashlib.md5(original, usedforsecurity=False).hexdigest()
    ]


async def test_the_early_read_serves_the_first_put_only_and_a_retry_reads_the_file_afresh(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The first PUT, answered 503, sent the bytes read with the presign; its retry reads the file
    again and sends what is on disk now (same size and mtime, so no check could tell)."""
    path = write_wav(tmp_path / "in" / "a.wav", seconds=0.1)
    later = rewrite_while_presigning(sandbox, path, put={"errors": [{"status": 503, "nth": [1]}]})

    stats = await run_submit(sandbox, [tmp_path / "in"], tmp_path / "l.db")

    assert (stats.created, stats.changed, stats.retries) == (1, 0, 1)
    assert sandbox.stats().requests["put"].by_status == {"503": 1, "200": 1}
    assert list(objects_by_key(sandbox).values()) == [hashlib.md5(later, usedforsecurity=False).hexdigest()]


async def test_a_streamed_file_begins_no_early_read_and_a_dropped_one_is_let_go(tmp_path: Path) -> None:
    options = UploadOptions(chunk_size=64 * KiB)
    big, small = random_file(tmp_path / "big.wav", 64 * KiB + 1), random_file(tmp_path / "small.wav", 1000)

    def listed(path: Path) -> ListedFile:
        st = path.stat()
        return ListedFile(path, st.st_size, st.st_mtime_ns)

    assert options.early_read(listed(big)).take() is None
    dropped = options.early_read(listed(small))
    dropped.drop()
    assert dropped.take() is None
    early = options.early_read(listed(small))
    read = early.take()
    assert read is not None and early.take() is None  # taken once
    data, _digest = await read
    assert data == small.read_bytes()


# --- cancellation -------------------------------------------------------------------------------


async def test_cancelling_an_upload_stops_the_reader_thread_and_closes_the_file(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # Far more than loopback socket buffers take in (several MB): still being read when cancelled.
    path = random_file(tmp_path / "big.wav", 48 * MiB)
    target = await target_for(http, sandbox, path.name)
    sandbox.set_faults(FaultPlan(s3_bandwidth_bytes_per_second=1_000_000))  # most of a minute
    started = anyio.Event()

    def progress(nbytes: int) -> None:
        started.set()

    with anyio.move_on_after(5) as outer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(put, http, target, path, UploadOptions(chunk_size=64 * KiB), progress)
            await started.wait()
            await anyio.sleep(0.2)
            assert reader_threads() and open_fds_on(path)  # mid-upload: the reader is at work
            tg.cancel_scope.cancel()
    assert not outer.cancelled_caught
    # put_file waits for its reader before it gives the cancellation back: nothing is left over.
    assert not reader_threads()
    assert not open_fds_on(path)


async def test_a_stalled_upload_stops_its_reader_too(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    from pipeline.errors import StalledUploadError

    path = random_file(tmp_path / "big.wav", 4 * MiB)
    target = await target_for(http, sandbox, path.name)
    sandbox.set_faults(FaultPlan(s3_bandwidth_bytes_per_second=20))  # takes (nearly) nothing

    with pytest.raises(StalledUploadError):
        await put(http, target, path, UploadOptions(chunk_size=256 * KiB, stall_timeout=0.3))
    assert not reader_threads() and not open_fds_on(path)


# --- memory bounded by construction --------------------------------------------------------------


async def test_the_read_ahead_holds_a_few_chunks_however_slow_the_connection(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The file is read only a few chunks ahead of what the connection took: measured as how far
    the reader's file position runs ahead of the bytes handed over (from /proc, the real fd)."""
    chunk = 64 * KiB
    path = random_file(tmp_path / "big.wav", 4 * MiB)
    target = await target_for(http, sandbox, path.name)
    sandbox.set_faults(FaultPlan(s3_bandwidth_bytes_per_second=2_000_000))
    taken = 0
    ahead: list[int] = []

    def progress(nbytes: int) -> None:
        nonlocal taken
        taken += nbytes
        for pos in read_positions_on(path):
            ahead.append(pos - taken)

    await put(http, target, path, UploadOptions(chunk_size=chunk), progress)

    assert ahead, "the reader's fd was never seen"
    assert max(ahead) <= 4 * chunk, max(ahead)


# --- bandwidth cap still paces the read-ahead path -------------------------------------------------


async def test_max_bandwidth_paces_a_large_upload(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = random_file(tmp_path / "big.wav", 3 * MiB)
    target = await target_for(http, sandbox, path.name)
    cap = 1_000_000
    options = UploadOptions(chunk_size=128 * KiB, bandwidth=AsyncLimiter(cap, 1.0))
    started = anyio.current_time()

    result = await put(http, target, path, options)

    assert result.bytes_sent == 3 * MiB
    assert anyio.current_time() - started >= (3 * MiB - cap) / cap * 0.95


# --- the read-ahead alone -------------------------------------------------------------------------


async def test_the_read_ahead_says_a_file_gone_before_it_opened_it_changed(tmp_path: Path) -> None:
    reader = ReadAhead(tmp_path / "gone.wav", 1000, 256)
    reader.start()
    try:
        with pytest.raises(FileChangedError, match="disappeared"):
            await reader.next_chunk()
    finally:
        await reader.aclose()
    assert not reader_threads()


async def test_the_read_ahead_gives_the_file_in_order_and_its_md5(tmp_path: Path) -> None:
    path = random_file(tmp_path / "a.wav", 10 * 1000 + 7)
    reader = ReadAhead(path, 10 * 1000 + 7, 1000, depth=2)
    reader.start()
    chunks = []
    try:
        while (chunk := await reader.next_chunk()) is not None:
            chunks.append(chunk)
            reader.taken()
    finally:
        await reader.aclose()
    assert b"".join(chunks) == path.read_bytes() and [len(c) for c in chunks][-1] == 7
    assert reader.digest.hexdigest() == hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    assert not reader_threads() and not open_fds_on(path)


# --- a file that cannot be read at upload time --------------------------------------------------


@pytest.mark.parametrize("chunk_size", [64 * KiB, 1 * KiB], ids=["one-hop", "read-ahead"])
async def test_a_file_that_cannot_be_read_is_a_classified_failure_naming_it_not_a_crash(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path, chunk_size: int
) -> None:
    # A real OS error at open: the path is a directory (its own size and mtime, so the
    # unchanged-check passes and the read is what fails), as an EACCES from an ACL would be.
    unreadable = tmp_path / "not-a-file.wav"
    unreadable.mkdir()
    target = await target_for(http, sandbox, unreadable.name)

    with pytest.raises(TransferError) as caught:
        await put(http, target, unreadable, UploadOptions(chunk_size=chunk_size))

    assert caught.value.error_class is ErrorClass.PERMANENT
    assert str(caught.value).startswith("cannot read the file: ")  # the caller names the file and row
    assert not reader_threads()


async def test_a_small_files_read_runs_on_threads_of_its_own(tmp_path: Path) -> None:
    """Not on the loop's default executor, where aiohttp resolves host names: reads stuck on a hung
    mount must not stall every new connection."""
    path = random_file(tmp_path / "a.wav", 1000)
    st = path.stat()

    def readers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("slng-bulk file read")}

    before = readers()  # other tests' options may have left idle ones
    reads = FileReads()
    file = ListedFile(path, st.st_size, st.st_mtime_ns)
    data, _digest = await reads.read_whole(file)
    await reads.check_unchanged(file)

    assert data == path.read_bytes()
    ours = readers() - before
    assert ours
    reads.close()  # the run's threads end with it
    for thread in ours:
        thread.join(timeout=5)
    assert not ours & readers()
