"""Read-ahead for one streamed PUT: a thread of its own reads the file and MD5s it, chunk by chunk.

Why: reading a chunk and hashing it are the two costly steps besides the socket write, and both
release the GIL (file reads, and hashlib on buffers over 2 KiB). Done in one worker thread that
runs ahead of the sender, they overlap with the send on another core, and the event loop is left
with nothing to do per chunk but take a ready buffer and write it: no thread hop per read, no
waiting for a hash before the next chunk. The MD5 is then never the cap while the network is
slower than one core's hashing (~500-600 MB/s).

The MD5 takes in each chunk before the chunk is handed over, so it is whole by the time the last
byte can reach S3 (hashing behind the send left a window where S3's answer came while the last
chunk's hash was still queued: a correct upload then looked corrupted and was sent again).

Memory is bounded by construction: the thread takes a slot before it reads a chunk, and the loop
gives the slot back only once the connection has taken that chunk, so at most `depth` chunks of
one upload exist at any time, however slow the connection.

Threads: one per upload in flight that is streamed (more than one chunk, or any size under
--max-bandwidth; so at most --concurrency), made and ended with that upload attempt; a plain
thread rather than the shared pool, so a slow disk under one upload never queues another's reads
behind it.

Stopping: `aclose()` tells the thread to stop, wakes it if it waits for a slot, and waits for it
to end (it closes its file before it ends). The thread looks at the stop flag before every read,
so it stops within one chunk's read. Each upload attempt makes a new `ReadAhead`, which opens
the file afresh and reads it from byte 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Final

import anyio

from pipeline.errors import FileChangedError, file_read_error

THREAD_PREFIX: Final = "slng-read"
DEFAULT_DEPTH: Final = 2  # one chunk on the wire while the next is read and hashed (3 measured no faster)
CLOSE_WAIT_SECONDS: Final = 5.0  # a read stuck on a sick disk must not hold a cancellation forever

_END: Final = object()  # the whole file was read


class ReadAhead:
    """The chunks of `path` (its first `size` bytes), read and hashed by a worker thread.

    Use from the event loop: `start()`, then `next_chunk()` until it returns None, calling
    `taken()` each time the connection has taken a chunk; `aclose()` always (in a finally).
    """

    def __init__(self, path: Path, size: int, chunk_size: int, depth: int = DEFAULT_DEPTH) -> None:
        if chunk_size < 1 or depth < 1:
            raise ValueError("chunk_size and depth must be positive")
        self.path = path
        self.size = size
        self.chunk_size = chunk_size
        self.digest: Any = hashlib.md5(usedforsecurity=False)  # complete once next_chunk() gave None
        self._loop = asyncio.get_running_loop()
        self._slots = threading.Semaphore(depth)
        self._stop = threading.Event()
        # Unbounded as a queue, bounded by the slots: the thread never holds more than `depth`.
        self._ready: asyncio.Queue[object] = asyncio.Queue()
        self._ended = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=f"{THREAD_PREFIX} {path.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def next_chunk(self) -> bytes | None:
        """The next chunk in file order; None at the end. Raises what the reader met
        (FileChangedError for a file cut short, TransferError for one that cannot be read)."""
        item = await self._ready.get()
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, bytes)
        return item

    def taken(self) -> None:
        """The connection took a chunk: its slot is free for the reader."""
        self._slots.release()

    async def aclose(self) -> None:
        """Stop the reader and wait (shielded, bounded) until its thread has ended."""
        self._stop.set()
        self._slots.release()  # wake it if it waits for a slot
        if self._thread.ident is None or not self._thread.is_alive():
            return  # never started, or already ended
        with anyio.move_on_after(CLOSE_WAIT_SECONDS, shield=True):
            await self._ended.wait()
            # The thread set the event on its last lines: joining it is a matter of microseconds.
            self._thread.join(timeout=0.5)

    # --- the worker thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with open_for_upload(self.path) as stream:
                offset = 0
                while offset < self.size:
                    self._slots.acquire()
                    if self._stop.is_set():
                        return
                    chunk = stream.read(min(self.chunk_size, self.size - offset))
                    if not chunk:
                        raise FileChangedError(
                            f"{self.path}: file shrank while uploading ({offset} of {self.size} bytes)"
                        )
                    if self._stop.is_set():
                        return
                    self.digest.update(chunk)
                    offset += len(chunk)
                    self._hand(chunk)
            self._hand(_END)
        except OSError as exc:  # an open or read refused (EACCES, EIO): this file's failure
            self._hand(file_read_error(exc))
        except Exception as exc:  # handed to the loop, raised there by next_chunk()
            self._hand(exc)
        finally:
            self._call(self._ended.set)

    def _hand(self, item: object) -> None:
        self._call(self._ready.put_nowait, item)

    def _call(self, fn: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(fn, *args)


def open_for_upload(path: Path) -> BinaryIO:
    """The file opened for reading its bytes to S3 (both upload paths): a file gone since it was
    listed is FileChangedError, one that cannot be opened (EACCES from an ACL) this file's
    TransferError, never a bare OSError that would end the run."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise FileChangedError(f"{path}: file disappeared before upload finished") from None
    except OSError as exc:
        raise file_read_error(exc) from None
