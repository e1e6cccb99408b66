"""One aiohttp middleware that applies the fault plan in front of both servers.

Faults act like a flaky load balancer in front of the service: they are decided before the
request is authenticated or parsed, except `lost_response`, which lets the service commit the work
and then drops the connection instead of answering (the duplicate-job trap).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from pipeline.sandbox.injector import Decision, FaultInjector, retry_after_value
from pipeline.sandbox.request_stats import StatsRecorder

Classifier = Callable[[web.Request], Awaitable[str | None]]
ErrorRenderer = Callable[[web.Request, int, Mapping[str, str]], web.StreamResponse]
InjectedHook = Callable[[web.Request, int | str, str], None]

DECISION_KEY = web.RequestKey("sandbox_decision", Decision)


def abort_connection(request: web.Request) -> None:
    """Drop the TCP connection at once: the client sees a reset / disconnect, never a response."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def _read_then_abort(request: web.Request, nbytes: int) -> None:
    got = 0
    while got < nbytes:
        chunk = await request.content.read(min(65536, nbytes - got))
        if not chunk:
            break
        got += len(chunk)
    abort_connection(request)


def make_fault_middleware(
    injector: FaultInjector,
    stats: StatsRecorder,
    classify: Classifier,
    render_error: ErrorRenderer,
    on_injected: InjectedHook | None = None,
) -> Middleware:
    """Build the middleware; requests `classify` maps to None (e.g. /__sandbox__) pass untouched."""

    def injected(request: web.Request, op: str, kind: str, outcome: int | str) -> None:
        stats.injected(op, kind)
        stats.request(op, outcome)
        if on_injected is not None:
            on_injected(request, outcome, kind)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        op = await classify(request)
        if op is None:
            return await handler(request)
        stats.arrived(op)
        decision = injector.decide(op)
        request[DECISION_KEY] = decision
        if decision.rate_limited_retry_after is not None:
            injected(request, op, "rate_limited", 429)
            return render_error(request, 429, {"Retry-After": str(decision.rate_limited_retry_after)})
        if decision.delay_seconds > 0:
            stats.injected(op, "latency")
            await asyncio.sleep(decision.delay_seconds)
        if decision.status is not None:
            status = decision.status.status
            headers: dict[str, str] = {}
            retry_after = retry_after_value(decision.status)
            if retry_after is not None:
                headers["Retry-After"] = retry_after
            injected(request, op, f"status_{status}", status)
            return render_error(request, status, headers)
        if decision.reset_after is not None:
            injected(request, op, "reset", "reset")
            await _read_then_abort(request, decision.reset_after)
            return web.Response(status=500)  # never delivered: the transport is gone
        try:
            response = await handler(request)
        except BaseException:
            stats.request(op, "error")  # e.g. the client vanished mid-body
            raise
        if decision.lose_response:
            stats.injected(op, "lost_response")
            stats.request(op, "lost")
            abort_connection(request)
            return response
        stats.request(op, response.status)
        return response

    return middleware
