"""The one place the commands start their async work, and the event loop it runs on.

uvloop's loop (libuv, in C) costs less CPU per socket event, callback and timer than asyncio's pure-
Python selector loop, and a run of small files is mostly those: three requests per file. It is an
optional dependency (the `fast` extra), so `auto` uses it when it is importable and asyncio's loop
otherwise; `asyncio` forces the standard loop (to rule uvloop out when chasing a problem) and
`uvloop` insists on it (a missing install is then a config error, not a silent slowdown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar, TypeVarTuple

import anyio

from pipeline.errors import ConfigError
from pipeline.observe.logs import log

EventLoop = Literal["auto", "uvloop", "asyncio"]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


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


def run_async(func: Callable[[*Ts], Awaitable[T]], *args: *Ts, loop: EventLoop) -> T:
    """`func(*args)` on a fresh event loop of the chosen kind, until it returns."""
    factory = loop_factory(loop)
    log.debug("event loop: %s", "asyncio" if factory is None else "uvloop")
    return anyio.run(func, *args, backend="asyncio", backend_options={"loop_factory": factory})
