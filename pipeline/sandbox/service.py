"""Starting and stopping a sandbox: in the caller's event loop, in a thread, or as a blocking server.

The `Sandbox` object is also the in-process read-back interface (`stats()`, `jobs()`, `objects()`,
`set_faults()`), returning the same data as `/__sandbox__/*`; these are safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TypeVar

import anyio.to_thread
from aiohttp import web

from pipeline.sandbox.api_server import ApiServer
from pipeline.sandbox.config import S3Credentials, SandboxConfig
from pipeline.sandbox.external_store import ExternalBucket
from pipeline.sandbox.faults import OPERATIONS, FaultPlan
from pipeline.sandbox.injector import FaultInjector
from pipeline.sandbox.lifecycle import render
from pipeline.sandbox.local_store import LocalBucket, LocalObjectStore
from pipeline.sandbox.objects import ObjectInfo, ObjectStore
from pipeline.sandbox.readback import JobsReadback, ObjectsReadback, Readback
from pipeline.sandbox.request_stats import SandboxStats, StatsRecorder
from pipeline.sandbox.s3_server import S3Server
from pipeline.sandbox.signing import Presigner
from pipeline.sandbox.state import SandboxState

T = TypeVar("T")
SHUTDOWN_TIMEOUT = 2.0


class Sandbox:
    """One API server plus (unless external) one strict S3 server, sharing a fault plan."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.api_url = ""
        self.s3_url = ""
        self.stats_recorder = StatsRecorder()
        self.injector = FaultInjector(self.config.faults)
        self.state: SandboxState | None = None
        self.s3_store: LocalObjectStore | None = None  # the local bucket store; None in external mode
        self.store: ObjectStore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._api: ApiServer | None = None

    # --- public attributes -----------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        return self.config.api_keys[0]

    @property
    def bucket(self) -> str:
        return self.config.bucket

    @property
    def s3_credentials(self) -> S3Credentials:
        return self.config.s3_credentials

    # --- the local bucket store (thread-safe; local mode only) ----------------------------------

    def _local(self) -> LocalObjectStore:
        if self.s3_store is None:
            raise RuntimeError("no local S3 store: the sandbox is not running, or runs in external mode")
        return self.s3_store

    def create_bucket(self, name: str) -> None:
        self._local().create_bucket(name)

    def object_info(self, key: str, bucket: str | None = None) -> ObjectInfo | None:
        return self._local().info(bucket or self.bucket, key)

    def read_object(self, key: str, bucket: str | None = None) -> bytes:
        return self._local().read_bytes(bucket or self.bucket, key)

    def write_object(
        self, key: str, data: bytes, content_type: str = "application/octet-stream", bucket: str | None = None
    ) -> ObjectInfo:
        return self._local().write_bytes(bucket or self.bucket, key, data, content_type)

    # --- read-back (thread-safe) -----------------------------------------------------------------

    def _on_loop(self, fn: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None or not loop.is_running():
            return fn()
        try:
            if asyncio.get_running_loop() is loop:
                return fn()
        except RuntimeError:
            pass
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(call)
        return future.result(timeout=30)

    def set_api_keys(self, *keys: str) -> None:
        """Accept only these keys from now on, as if the others were deleted in the dashboard."""
        if self._api is None:
            raise RuntimeError("the sandbox is not running")
        api = self._api
        self._on_loop(lambda: setattr(api, "accepted_keys", set(keys)))

    def set_faults(self, plan: FaultPlan) -> None:
        """Replace the fault plan (counters, RNG and rate buckets restart)."""
        self._on_loop(lambda: self.injector.set_plan(plan))

    def set_capacity(self, **per_second: float | None) -> None:
        """Change hidden capacities mid-run, e.g. `set_capacity(create=5, presign=None)`: requests
        per second each operation accepts (beyond it 429 with Retry-After); None lifts the limit.
        Unlike `set_faults`, nothing else restarts."""
        for op in per_second:
            if op not in OPERATIONS:
                raise ValueError(f"unknown operation {op!r}; known: {', '.join(OPERATIONS)}")

        def apply() -> None:
            for op, rate in per_second.items():
                self.injector.set_capacity(op, rate)

        self._on_loop(apply)

    def faults(self) -> FaultPlan:
        return self.injector.plan

    def listen(
        self,
        on_arrival: Callable[[str, int], None] | None = None,
        on_outcome: Callable[[str, str], None] | None = None,
        on_url_issued: Callable[[str], None] | None = None,
    ) -> None:
        """Be told, on the sandbox's loop, of each faultable request as it arrives (operation, nth;
        before its faults are decided, so the listener may still change the plan or the keys), of
        the outcome the client got, and of each presigned URL issued. For tests and demos."""
        recorder = self.stats_recorder
        if on_arrival is not None:
            recorder.arrival_listeners.append(on_arrival)
        if on_outcome is not None:
            recorder.outcome_listeners.append(on_outcome)
        if on_url_issued is not None:
            recorder.url_listeners.append(on_url_issued)

    def stats(self) -> SandboxStats:
        return self._on_loop(self.stats_recorder.snapshot)

    def jobs(self) -> JobsReadback:
        def collect() -> JobsReadback:
            state = self.state
            if state is None:
                return JobsReadback()
            now, step = time.time(), self.config.job_step_seconds
            jobs = sorted(state.jobs.values(), key=lambda j: j.seq)
            return JobsReadback(jobs=[render(j, now, step) for j in jobs], attempts=list(state.attempts))

        return self._on_loop(collect)

    def objects(self) -> ObjectsReadback:
        def collect() -> ObjectsReadback:
            if self.s3_store is not None:
                return ObjectsReadback(objects=self.s3_store.list())
            if isinstance(self.store, ExternalBucket):
                return ObjectsReadback(objects=sorted(self.store.known.values(), key=lambda o: o.key))
            return ObjectsReadback()

        return self._on_loop(collect)

    # --- running -------------------------------------------------------------------------------

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Sandbox]:
        """Serve in the current event loop until the context exits."""
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self.state = SandboxState(cfg.data_dir)
        runners: list[web.AppRunner] = []
        try:
            if cfg.external:
                assert cfg.s3_endpoint is not None
                self.store = await anyio.to_thread.run_sync(
                    ExternalBucket, cfg.s3_endpoint, cfg.bucket, cfg.s3_credentials
                )
                self.s3_url = cfg.s3_endpoint
            else:
                self.s3_store = LocalObjectStore(cfg.data_dir)
                self.s3_store.create_bucket(cfg.bucket)
                s3 = S3Server(self.s3_store, cfg.s3_credentials, self.injector, self.stats_recorder)
                port = await _start(s3.app(), cfg.host, cfg.s3_port, runners)
                self.s3_url = f"http://{cfg.url_host}:{port}"
                presigner = await anyio.to_thread.run_sync(
                    Presigner, self.s3_url, cfg.bucket, cfg.s3_credentials
                )
                self.store = LocalBucket(self.s3_store, cfg.bucket, presigner)
            api = ApiServer(cfg, self.state, self.store, self.injector, self.stats_recorder)
            self._api = api
            readback = Readback(
                self.stats, self.jobs, self.objects, self.injector.set_plan, self.faults, self.set_capacity
            )
            port = await _start(api.app(readback.routes()), cfg.host, cfg.api_port, runners)
            self.api_url = f"http://{cfg.url_host}:{port}"
            yield self
        finally:
            for runner in reversed(runners):
                await runner.cleanup()
            if self.s3_store is not None:
                self.s3_store.close()
            self._loop = None

    @contextmanager
    def run_in_thread(self) -> Iterator[Sandbox]:
        """Serve from a private thread and event loop; for sync code and subprocess-driven tests."""
        ready = threading.Event()
        failure: list[BaseException] = []
        holder: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}

        async def main() -> None:
            stop = asyncio.Event()
            holder["stop"] = (asyncio.get_running_loop(), stop)
            try:
                async with self.run():
                    ready.set()
                    await stop.wait()
            except BaseException as exc:
                failure.append(exc)
                ready.set()

        thread = threading.Thread(target=lambda: asyncio.run(main()), name="slng-sandbox", daemon=True)
        thread.start()
        if not ready.wait(timeout=30):
            raise TimeoutError("the sandbox thread did not start within 30 s")
        if failure:
            thread.join(timeout=5)
            raise failure[0]
        try:
            yield self
        finally:
            loop, stop = holder["stop"]
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=30)


async def _start(app: web.Application, host: str, port: int, runners: list[web.AppRunner]) -> int:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    runners.append(runner)
    site = web.TCPSite(runner, host, port)
    await site.start()
    return int(runner.addresses[0][1])


def serve(config: SandboxConfig) -> None:
    """Run a sandbox in the foreground until SIGINT or SIGTERM (what `slng-bulk sandbox` calls)."""
    asyncio.run(_serve(config))


async def _serve(config: SandboxConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Sandbox(config).run() as sb:
        print(f"SLNG sandbox API: {sb.api_url}", flush=True)
        print(f"S3: {sb.s3_url}", flush=True)
        print(f"API key: {sb.api_key}", flush=True)
        await stop.wait()
