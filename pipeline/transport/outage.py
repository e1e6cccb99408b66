"""Riding through an outage: a health gate per endpoint that pauses requests instead of failing files.

One failing file is that file's business (its retries, then FAILED). Every request failing at once
(refused, a name that does not resolve, timeouts, 5xx for everything) is the endpoint's: retrying
each file until its budget runs out would fail the whole manifest, one file after another. So each
endpoint (the API, each S3 host) has one `HealthGate`, shared by every request to it:

- closed (healthy): requests pass at once, and a request that fails is an ordinary failure;
- `threshold` outage failures in a row (across files, no answer between) open it; before the
  endpoint ever answered in this run, `start_threshold` do, so an unreachable start is seen at once;
- while open, requests wait at the gate (holding no retry budget: nothing is counted), a request that
  fails meanwhile waits too and is then sent again, and one prober at a time sends a neutral request
  (the endpoint's `Probe`) with exponential backoff and jitter;
- any answer (the probe's or a request's) closes it and every waiter goes on;
- open for longer than `max_outage` (or `start_budget` when it never answered), it gives up: every
  waiter, and every later request, gets one `OutageError`, and the run ends with nothing failed.

No circuit-breaker library fits (aiobreaker, purgatory and pybreaker fail calls fast while open;
here calls wait and a prober decides): this is the small state machine, with the clock, the sleep
and the random source injectable for the tests.
"""

from __future__ import annotations

import random
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp
import anyio

from pipeline.errors import NetworkError, OutageError, TransferError
from pipeline.logs import log

T = TypeVar("T")
Probe = Callable[[], Awaitable[bool]]  # True when the endpoint answered (anything but a 5xx)

OUTAGE_STATUSES = frozenset({500, 502, 503, 504})
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=10.0, sock_connect=5.0)


@dataclass(frozen=True)
class OutagePolicy:
    max_outage: float = 300.0  # seconds an endpoint may stay out before the run ends (--max-outage)
    start_budget: float = 5.0  # the same, for an endpoint that has not answered once in this run
    threshold: int = 3  # outage failures in a row, across files, that open the gate
    start_threshold: int = 2  # the same, before the endpoint answered once in this run
    base_delay: float = 0.5  # first probe after this long (then doubling, jittered)
    max_delay: float = 15.0


def is_outage_failure(exc: BaseException) -> bool:
    """No answer, or a 5xx that says the service itself is down. A 5xx with Retry-After is the
    server saying when to come back: throttling, for the retries to honour, not an outage. A
    stalled upload is not one either: the host took the connection, the path to it is slow."""
    if isinstance(exc, NetworkError):
        return True
    return isinstance(exc, TransferError) and exc.status in OUTAGE_STATUSES and exc.retry_after is None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:.0f} s"


@dataclass
class HealthGate:
    """The health of one endpoint (`name` is how messages call it, e.g. "API at https://host")."""

    name: str
    probe: Probe
    policy: OutagePolicy = field(default_factory=OutagePolicy)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    rng: random.Random = field(default_factory=random.Random)
    failures_in_a_row: int = 0
    answered_once: bool = False
    opened_at: float | None = None  # None: closed
    last_error: str = ""
    given_up: OutageError | None = None
    _probing: bool = False
    _changed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    async def through(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` (one request) past the gate; an outage failure during an outage is waited
        out and the request sent again. Anything else comes out as it is."""
        while True:
            await self.passage()
            try:
                result = await attempt()
            except TransferError as exc:
                if not is_outage_failure(exc):
                    self.answered()
                    raise
                if not await self.failed(exc):
                    raise
                continue
            self.answered()
            return result

    async def passage(self) -> None:
        """At once while healthy; while out, wait until it answers (OutageError past the budget)."""
        if self.given_up is not None:
            raise self.given_up
        if self.opened_at is not None:
            await self._wait_closed()

    def answered(self) -> None:
        """A request got an answer: the endpoint is up (an open gate closes)."""
        self.failures_in_a_row = 0
        if self.opened_at is not None:
            self._close()
        self.answered_once = True

    async def failed(self, exc: TransferError) -> bool:
        """Count an outage failure. True: the endpoint is out and has answered again since (send
        the request again, nothing counted); False: an ordinary failure, for the caller's retries."""
        self.failures_in_a_row += 1
        self.last_error = str(exc)
        threshold = self.policy.threshold if self.answered_once else self.policy.start_threshold
        if self.opened_at is None and self.failures_in_a_row >= threshold:
            self._open()
        if self.opened_at is None:
            return False
        await self._wait_closed()
        return True

    # --- the state machine -----------------------------------------------------------------------

    def _budget(self) -> float:
        if self.answered_once:
            return self.policy.max_outage
        return min(self.policy.start_budget, self.policy.max_outage)

    def _open(self) -> None:
        self.opened_at = self.clock()
        how_long = _minutes(self._budget())
        if self.answered_once:
            log.warning(
                "%s stopped answering (%s): pausing, nothing fails meanwhile; probing for up to %s",
                self.name,
                self.last_error,
                how_long,
                extra={"fields": {"event": "outage_started", "endpoint": self.name}},
            )
        else:  # at start: the one line is the final one, unless it comes back
            log.info("%s does not answer (%s): probing for up to %s", self.name, self.last_error, how_long)

    def _close(self) -> None:
        assert self.opened_at is not None
        if self.answered_once:
            log.warning(
                "%s answers again after %.0f s: resuming",
                self.name,
                self.clock() - self.opened_at,
                extra={"fields": {"event": "outage_ended", "endpoint": self.name}},
            )
        self.opened_at = None
        self.failures_in_a_row = 0
        self._notify()

    def _give_up(self) -> None:
        assert self.opened_at is not None
        if self.answered_once:
            what = f"unreachable for {_minutes(self.clock() - self.opened_at)} (--max-outage)"
        else:
            what = "unreachable from the start"
        self.given_up = OutageError(
            f"{self.name} {what}; last error: {self.last_error}; nothing failed, a rerun resumes"
        )
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait_closed(self) -> None:
        while True:
            if self.given_up is not None:
                raise self.given_up
            if self.opened_at is None:
                return
            if not self._probing:
                await self._probe_until_settled()
                continue
            await self._changed.wait()

    async def _probe_until_settled(self) -> None:
        """Be the one prober: probe with backoff until the endpoint answers or the budget is spent.
        A prober cancelled (its file stopped) hands over to the next waiter."""
        self._probing = True
        try:
            attempt = 0
            while self.opened_at is not None and self.given_up is None:
                ends = self.opened_at + self._budget()
                cap = min(self.policy.max_delay, self.policy.base_delay * 2**attempt)
                delay = self.rng.uniform(cap / 2, cap)  # equal jitter: probers of many hosts spread out
                await self.sleep(max(0.0, min(delay, ends - self.clock())))
                if self.opened_at is None:
                    return  # a request got an answer meanwhile
                if await self._probe_once():
                    self.answered()
                    return
                if self.clock() >= ends:
                    self._give_up()
                    return
                attempt += 1
        finally:
            self._probing = False
            self._notify()

    async def _probe_once(self) -> bool:
        try:
            return await self.probe()
        except Exception as exc:  # the probe's own failure is only "not yet"
            self.last_error = " ".join(str(exc).split())[:300] or type(exc).__name__
            return False


async def http_probe(
    session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str] | None = None
) -> bool:
    """One neutral request: True when the server answers with anything but a 5xx."""
    async with session.request(
        method, url, headers=headers, timeout=PROBE_TIMEOUT, allow_redirects=False
    ) as response:
        return response.status not in OUTAGE_STATUSES


@dataclass
class OutageGates:
    """The gates of one HTTP session, one per endpoint it talks to (the API, each S3 host).

    Attached to the session by the command that opens it (`attach`), and found from the session by
    the API client, the upload and the download (`of`): a session without gates (a library caller's,
    a test's) sends as before, every failure its caller's to handle.
    """

    session: aiohttp.ClientSession
    policy: OutagePolicy
    gates: dict[str, HealthGate] = field(default_factory=dict)

    def api(self, base_url: str, headers: dict[str, str], probe_path: str) -> HealthGate:
        """The API's gate; its probe is a one-item list of jobs (a cheap, idempotent read)."""
        probe_url = base_url + probe_path
        return self._gate(f"API at {base_url}", lambda: http_probe(self.session, "GET", probe_url, headers))

    def storage(self, url: str) -> HealthGate:
        """The gate of the S3 host a presigned URL points at; its probe is a HEAD of the host's root
        (unsigned: any answer but a 5xx, a 403 included, says the host is up)."""
        parts = urlsplit(url)
        root = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/"
        return self._gate(f"storage at {root.rstrip('/')}", lambda: http_probe(self.session, "HEAD", root))

    def _gate(self, name: str, probe: Probe) -> HealthGate:
        gate = self.gates.get(name)
        if gate is None:
            gate = self.gates[name] = HealthGate(name, probe, self.policy)
        return gate

    @staticmethod
    def attach(session: aiohttp.ClientSession, policy: OutagePolicy) -> OutageGates:
        gates = OutageGates(session, policy)
        _by_session[session] = gates
        return gates

    @staticmethod
    def of(session: aiohttp.ClientSession) -> OutageGates | None:
        return _by_session.get(session)


_by_session: weakref.WeakKeyDictionary[aiohttp.ClientSession, OutageGates] = weakref.WeakKeyDictionary()


def storage_gate(session: aiohttp.ClientSession, url: str) -> HealthGate | None:
    """The gate of the S3 host `url` points at, when the session has gates."""
    gates = OutageGates.of(session)
    return gates.storage(url) if gates is not None else None


async def through_gate(gate: HealthGate | None, attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt` past `gate`, or straight when there is none."""
    if gate is None:
        return await attempt()
    return await gate.through(attempt)
