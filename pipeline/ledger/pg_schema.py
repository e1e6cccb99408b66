"""The PostgreSQL ledger's tables and their migrations.

The same tables and columns as the SQLite ledger (so records, reports and the contract are one),
plus what a fleet of hosts sharing one ledger needs:

- `claims`: one row per file a worker is on right now (host, worker, lease end, heartbeat). It is
  the only table rewritten by heartbeats, and a file's row leaves it when the file is finished, so
  it stays as small as the work in flight; done files are never touched by heartbeats.
- `takeovers`: each claim taken from a worker whose lease ran out (who lost it, who took it).
- `workers`: one row per `work` process, for the fleet view.
- `files.host`: the host that last moved the file, for progress by host.

Migrations run under an advisory lock, so hosts starting together migrate once; DDL is
transactional, so a migration lands whole or not at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import psycopg

from pipeline.errors import ConfigError
from pipeline.ledger import rekey

MIGRATION_LOCK: Final = 0x736C6E67  # "slng": the advisory lock that serialises migrations


async def _rekey(conn: psycopg.AsyncConnection[Any]) -> None:
    """Migration 5's second half: every file's key recomputed (`pipeline.ledger.rekey`)."""
    select = rekey.SELECT_BATCH.format(p="%s")
    update = rekey.UPDATE_KEY.format(p="%s")
    for created in (1, 0):
        before = rekey.NO_ID_ABOVE
        while rows := await (await conn.execute(select, (created, before, rekey.REKEY_BATCH))).fetchall():
            async with conn.cursor() as cursor:
                await cursor.executemany(update, rekey.new_keys(rows))
            before = rows[-1][0]


MIGRATIONS: tuple[str | Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]], ...] = (
    # 1: the ledger proper (as SQLite's after its migrations), claims, takeovers, workers
    """
    CREATE TABLE files (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        file_key TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        line INTEGER,
        path TEXT NOT NULL,
        relative_path TEXT NOT NULL,
        size BIGINT NOT NULL,
        mtime_ns BIGINT NOT NULL,
        settings_hash TEXT NOT NULL,
        settings_json TEXT NOT NULL,
        state TEXT NOT NULL,
        job_id TEXT NOT NULL UNIQUE,
        generation INTEGER NOT NULL DEFAULT 0,
        s3_key TEXT,
        echo_json TEXT,
        md5 TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        error_class TEXT,
        seen_run TEXT,
        admitted_at DOUBLE PRECISION NOT NULL,
        presigned_at DOUBLE PRECISION,
        uploaded_at DOUBLE PRECISION,
        create_sent_at DOUBLE PRECISION,
        created_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL,
        job_status TEXT,
        job_error TEXT,
        status_checked_at DOUBLE PRECISION,
        fetched_formats TEXT,
        fetched_at DOUBLE PRECISION,
        server_deleted_at DOUBLE PRECISION,
        host TEXT
    );
    CREATE INDEX files_state ON files(state);
    CREATE INDEX files_job_status ON files(job_status);
    -- The claim query scans only unfinished files: the index shrinks as the fleet finishes them.
    CREATE INDEX files_unfinished ON files(id) WHERE state <> 'created';
    CREATE INDEX files_host_created ON files(host, created_at) WHERE state = 'created';
    CREATE TABLE rejections (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id TEXT NOT NULL,
        source TEXT NOT NULL,
        line INTEGER,
        path TEXT,
        reason TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX rejections_run ON rejections(run_id);
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        started_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        summary_json TEXT
    );
    CREATE TABLE job_history (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        file_id BIGINT NOT NULL REFERENCES files(id),
        job_id TEXT NOT NULL,
        state TEXT NOT NULL,
        kind TEXT,
        error TEXT,  -- the reason, for people (named as in the SQLite ledger)
        replaced_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX job_history_file ON job_history(file_id);
    CREATE TABLE workers (
        worker TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        finished_at TIMESTAMPTZ
    );
    CREATE TABLE claims (
        file_id BIGINT PRIMARY KEY REFERENCES files(id),
        worker TEXT NOT NULL,
        host TEXT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        lease_expires_at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX claims_worker ON claims(worker);
    CREATE INDEX claims_lease ON claims(lease_expires_at);
    CREATE TABLE takeovers (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        file_id BIGINT NOT NULL REFERENCES files(id),
        from_worker TEXT NOT NULL,
        from_host TEXT NOT NULL,
        to_worker TEXT NOT NULL,
        to_host TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE rate_buckets (
        name TEXT PRIMARY KEY,
        tokens DOUBLE PRECISION NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
    )
    """,
    # The fleet's rate follows the server (pipeline.ledger.shared_rate): the cubic's last estimate
    # and when it was made, and the fleet's acceptances, counted as they are reported.
    """
    ALTER TABLE rate_buckets
        ADD COLUMN w_max DOUBLE PRECISION,
        ADD COLUMN cut_at TIMESTAMPTZ,
        ADD COLUMN started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        ADD COLUMN accepted_total DOUBLE PRECISION NOT NULL DEFAULT 0,
        ADD COLUMN accepted_at_cut DOUBLE PRECISION NOT NULL DEFAULT 0
    """,
    # 3: audio named by URL (as SQLite's migration 4): the object's version beside its URL in `path`
    """
    ALTER TABLE files ADD COLUMN object_version TEXT
    """,
    # 4 and 5 (as SQLite's 5 and 6): the transcript files fetch wrote, and identity by the
    # recognition settings only, each key recomputed and the old one kept as its job ids' seed
    """
    ALTER TABLE files ADD COLUMN transcripts TEXT;
    ALTER TABLE files ADD COLUMN job_seed TEXT
    """,
    _rekey,
)


async def migrate(conn: psycopg.AsyncConnection[Any]) -> None:
    """Bring the schema up to date in one transaction, whichever host gets there first."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS slng_schema (version INTEGER NOT NULL)")
        row = await (await conn.execute("SELECT max(version) FROM slng_schema")).fetchone()
        version = int(row[0]) if row is not None and row[0] is not None else 0
        if version > len(MIGRATIONS):
            raise ConfigError(
                f"ledger schema version {version} is newer than this slng-bulk understands "
                f"({len(MIGRATIONS)}); upgrade slng-bulk"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            if callable(script):
                await script(conn)
            else:
                for statement in script.split(";"):
                    if statement.strip():
                        await conn.execute(statement.encode())
            await conn.execute("INSERT INTO slng_schema(version) VALUES (%s)", (number,))
