"""The one place the commands start their async work, and the event loop it runs on.

uvloop's loop (libuv, in C) costs less CPU per socket event, callback and timer than asyncio's pure-
Python selector loop, and a run of small files is mostly those: three requests per file. It is an
optional dependency (the `fast` extra), so `auto` uses it when it is importable and asyncio's loop
otherwise; `asyncio` forces the standard loop (to rule uvloop out when chasing a problem) and
`uvloop` insists on it (a missing install is then a config error, not a silent slowdown).

The garbage collector is eased for the run (`lean_gc`): each file allocates a few thousand short-lived
objects (requests, models, ledger records), nearly all freed by reference counting, yet every 700
allocations a gen-0 collection runs, and the older generations rescan everything loaded at start-up.
Freezing the start-up objects and collecting gen 0 every 10,000 allocations instead took 7-10% off
the CPU per file in a 2,000-file run; the extra garbage it can hold is bounded by that threshold.
The frozen objects stay frozen after the run: nearly all are start-up's and live as long as the process,
and thawing them would make the collection at interpreter exit scan them all again (~0.1 s).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Literal, TypeVar, TypeVarTuple

import anyio

from pipeline.errors import ConfigError
from pipeline.logs import log

EventLoop = Literal["auto", "uvloop", "asyncio"]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

GEN0_THRESHOLD = 10_000  # Python's default is 700
_frozen = False  # start-up's objects moved to the permanent generation (first run of the process)


def loop_factory(choice: EventLoop) -> LoopFactory | None:
    """uvloop's loop constructor, or None for asyncio's default loop."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                "--event-loop uvloop: uvloop is not installed (pip install 'slng-bulk[fast]'), "
                "or use --event-loop auto"
            ) from None
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


@contextmanager
def lean_gc() -> Iterator[None]:
    """Fewer, cheaper collections while the block runs; the thresholds as they were afterwards."""
    before = gc.get_threshold()
    global _frozen
    if not _frozen:  # once: a later run's leftovers (a library caller's, the tests') stay collectable
        gc.freeze()  # what exists now (modules, classes, settings) lives as long as the process anyway
        _frozen = True
    gc.set_threshold(max(before[0], GEN0_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def run_async(func: Callable[[*Ts], Awaitable[T]], *args: *Ts, loop: EventLoop) -> T:
    """`func(*args)` on a fresh event loop of the chosen kind, until it returns."""
    factory = loop_factory(loop)
    log.debug("event loop: %s", "asyncio" if factory is None else "uvloop")
    with lean_gc():
        return anyio.run(func, *args, backend="asyncio", backend_options={"loop_factory": factory})
