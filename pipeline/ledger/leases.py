"""Claims with leases on the shared PostgreSQL ledger: how `work` processes share one manifest.

A worker claims a few unfinished files at a time with `SELECT ... FOR UPDATE SKIP LOCKED` (two
workers never wait on, nor take, the same rows), records a lease for each in `claims`, commits,
and only then works on them: no row lock is ever held across an upload. A heartbeat extends the
worker's leases; finishing a file (created or failed) releases its claim. A worker that dies stops
heartbeating; once its leases run out (server time, so the hosts' clocks do not matter) another
worker takes the files over, and each takeover is recorded. The taker resumes from the file's
recorded state, and the deterministic job_id with the check before create keeps every job unique
even if the first worker was only slow, not dead.

A file failed for a transient reason is taken again only by a worker that started after the
failure, so a fleet never loops on a failing file: each worker gives it at most one more try.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipeline.errors import ErrorClass
from pipeline.ledger.base import SharedLedger
from pipeline.ledger.postgres import Connection
from pipeline.ledger.records import FileRecord, FileState
from pipeline.ledger.schema import FILE_COLUMNS, record_from_row

# Files still to do for a worker that started at %(since)s: not created, and not failed for good
# nor failed since it started.
_UNFINISHED = (
    "f.state <> 'created' AND (f.state <> 'failed'"
    " OR (f.error_class IS DISTINCT FROM %(permanent)s AND f.updated_at < %(since)s))"
)


@dataclass(frozen=True, slots=True)
class HostProgress:
    """One host's part of a fleet run, for `status` on a shared ledger."""

    host: str
    workers_alive: int
    claimed: int
    done: int
    failed: int
    bytes_per_second: float  # created files' bytes over the last `window` seconds
    taken_over: int  # claims this host took from workers whose leases ran out


class Leases:
    """One worker's claims on `ledger`: `worker` names the process, the ledger's host its machine."""

    def __init__(self, ledger: SharedLedger, worker: str, lease_seconds: float) -> None:
        self.ledger = ledger
        self.worker = worker
        self.lease_seconds = lease_seconds
        self.started_at = time.time()
        self.holding: set[int] = set()  # ids of the files claimed and not released

    def _params(self, **extra: object) -> dict[str, object]:
        return {
            "worker": self.worker,
            "host": self.ledger.host,
            "lease": self.lease_seconds,
            "since": self.started_at,
            "permanent": ErrorClass.PERMANENT.value,
            **extra,
        }

    async def register(self) -> None:
        """This worker is alive (for the fleet view)."""

        async def register(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO workers(worker, host) VALUES (%(worker)s, %(host)s)"
                " ON CONFLICT (worker) DO UPDATE SET heartbeat_at = now(), finished_at = NULL",
                self._params(),
            )

        await self.ledger.run(register)

    async def claim(self, limit: int) -> list[FileRecord]:
        """Up to `limit` unfinished files nobody holds a live lease on, now leased to this worker.

        One short transaction: lock candidate rows (skipping rows another worker is claiming right
        now), take over expired claims (recorded in `takeovers`), insert ours, commit. Run again
        after a lost server, it also returns the files an unheard commit claimed for this worker.
        """
        if limit <= 0:
            return []
        tries = 0

        async def claim(conn: Connection) -> list[FileRecord]:
            nonlocal tries
            tries += 1
            async with conn.transaction():
                return await self._claim(conn, limit, again=tries > 1)

        records = await self.ledger.run(claim)
        self.holding.update(record.id for record in records)
        return records

    async def _claim(self, conn: Connection, limit: int, *, again: bool) -> list[FileRecord]:
        unheard: list[int] = []
        if again:
            cursor = await conn.execute(
                "SELECT file_id FROM claims"
                " WHERE worker = %(worker)s AND NOT file_id = ANY(%(held)s::bigint[])",
                self._params(held=sorted(self.holding)),
            )
            unheard = [row[0] for row in await cursor.fetchall()]
        cursor = await conn.execute(
            "SELECT f.id FROM files f WHERE " + _UNFINISHED + " AND NOT EXISTS ("
            "SELECT 1 FROM claims c WHERE c.file_id = f.id AND c.lease_expires_at > now())"
            " ORDER BY f.id LIMIT %(limit)s FOR UPDATE OF f SKIP LOCKED",
            self._params(limit=limit),
        )
        ids = [row[0] for row in await cursor.fetchall()]
        if not ids and not unheard:
            return []
        cursor = await conn.execute(
            "DELETE FROM claims WHERE file_id = ANY(%(ids)s) AND lease_expires_at <= now()"
            " RETURNING file_id, worker, host",
            self._params(ids=ids),
        )
        expired = await cursor.fetchall()
        cursor = await conn.execute(
            "INSERT INTO claims(file_id, worker, host, lease_expires_at)"
            " SELECT id, %(worker)s, %(host)s, now() + %(lease)s * interval '1 second'"
            " FROM unnest(%(ids)s::bigint[]) AS id ON CONFLICT (file_id) DO NOTHING RETURNING file_id",
            self._params(ids=ids),
        )
        taken = {row[0] for row in await cursor.fetchall()} | set(unheard)
        lost = [(fid, worker, host) for fid, worker, host in expired if fid in taken]
        if lost:
            async with conn.cursor() as many:
                await many.executemany(
                    "INSERT INTO takeovers(file_id, from_worker, from_host, to_worker, to_host)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(fid, worker, host, self.worker, self.ledger.host) for fid, worker, host in lost],
                )
        cursor = await conn.execute(
            "SELECT " + FILE_COLUMNS + " FROM files WHERE id = ANY(%(ids)s) ORDER BY id",
            self._params(ids=sorted(taken)),
        )
        return [record_from_row(row) for row in await cursor.fetchall()]

    async def heartbeat(self) -> int:
        """Extend every lease of this worker; how many it still holds."""

        async def beat(conn: Connection) -> int:
            async with conn.transaction():
                await conn.execute(
                    "UPDATE workers SET heartbeat_at = now() WHERE worker = %(worker)s", self._params()
                )
                cursor = await conn.execute(
                    "UPDATE claims SET heartbeat_at = now(), lease_expires_at = now() + %(lease)s * interval"
                    " '1 second' WHERE worker = %(worker)s",
                    self._params(),
                )
                return cursor.rowcount

        return await self.ledger.run(beat)

    async def release(self, record: FileRecord) -> None:
        """The file is finished (or given back): its claim goes, if it is still ours."""

        async def release(conn: Connection) -> None:
            await conn.execute(
                "DELETE FROM claims WHERE file_id = %(id)s AND worker = %(worker)s",
                self._params(id=record.id),
            )

        await self.ledger.run(release)
        self.holding.discard(record.id)

    async def release_all(self) -> None:
        """On the way out: give back whatever is still claimed, so nobody waits for a lease to end."""

        async def release_all(conn: Connection) -> None:
            async with conn.transaction():
                await conn.execute("DELETE FROM claims WHERE worker = %(worker)s", self._params())
                await conn.execute(
                    "UPDATE workers SET finished_at = now() WHERE worker = %(worker)s", self._params()
                )

        await self.ledger.run(release_all)
        self.holding.clear()

    async def others_unfinished(self) -> int:
        """Files still to do that this worker does not hold: claimed by others (who may die and
        leave them to us) or about to be claimed. Zero means this worker's part of the run is over."""

        async def count(conn: Connection) -> int:
            cursor = await conn.execute(
                "SELECT count(*) FROM files f WHERE " + _UNFINISHED + " AND NOT EXISTS ("
                "SELECT 1 FROM claims c WHERE c.file_id = f.id AND c.worker = %(worker)s)",
                self._params(),
            )
            row = await cursor.fetchone()
            return int(row[0]) if row else 0

        return await self.ledger.run(count)


def fleet_progress(ledger: SharedLedger, window: float = 60.0) -> list[HostProgress]:
    """Progress by host from the shared ledger: live workers, live claims, done, failed, bytes/s."""
    since = time.time() - window
    rows = ledger.read(
        "WITH hosts AS (SELECT host FROM files WHERE host IS NOT NULL UNION SELECT host FROM workers"
        " UNION SELECT host FROM claims)"
        " SELECT h.host,"
        " (SELECT count(*) FROM workers w WHERE w.host = h.host AND w.finished_at IS NULL"
        "   AND w.heartbeat_at > now() - interval '5 minutes'),"
        " (SELECT count(*) FROM claims c WHERE c.host = h.host AND c.lease_expires_at > now()),"
        " (SELECT count(*) FROM files f WHERE f.host = h.host AND f.state = %s),"
        " (SELECT count(*) FROM files f WHERE f.host = h.host AND f.state = %s),"
        " (SELECT coalesce(sum(f.size), 0) FROM files f WHERE f.host = h.host AND f.state = %s"
        "   AND f.created_at > %s),"
        " (SELECT count(*) FROM takeovers t WHERE t.to_host = h.host)"
        " FROM hosts h ORDER BY h.host",
        (FileState.CREATED.value, FileState.FAILED.value, FileState.CREATED.value, since),
    )
    return [
        HostProgress(
            host=str(host),
            workers_alive=int(alive),
            claimed=int(claimed),
            done=int(done),
            failed=int(failed),
            bytes_per_second=float(recent) / window,
            taken_over=int(taken),
        )
        for host, alive, claimed, done, failed, recent, taken in rows
    ]


def takeovers(ledger: SharedLedger) -> list[tuple[int, str, str]]:
    """Every claim taken from a worker whose lease ran out: (file id, from worker, to worker)."""
    return [
        (int(fid), str(src), str(dst))
        for fid, src, dst in ledger.read("SELECT file_id, from_worker, to_worker FROM takeovers ORDER BY id")
    ]


__all__ = ["HostProgress", "Leases", "fleet_progress", "takeovers"]
