"""The PostgreSQL test fixture itself: a reachable server, and a fresh, private database per test."""

from __future__ import annotations

import psycopg

from tests.support.postgres import PostgresServer, create_database, drop_database

_seen: list[str] = []


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return [row[0] for row in rows]


def test_each_test_gets_an_empty_database_of_its_own(postgres_url: str) -> None:
    assert _tables(postgres_url) == []
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE left_behind (id int)")
        name = conn.execute("SELECT current_database()").fetchone()
    assert name is not None and name[0] not in _seen
    _seen.append(name[0])


def test_a_second_test_does_not_see_the_first_ones_tables(postgres_url: str) -> None:
    assert _tables(postgres_url) == []


def test_a_test_database_is_dropped_even_with_a_connection_left_open(postgres_server: PostgresServer) -> None:
    """A SIGKILLed worker leaves its connections behind until the server notices: drop anyway."""
    name = create_database(postgres_server)
    leftover = psycopg.connect(postgres_server.url_for(name))
    try:
        drop_database(postgres_server, name)
    finally:
        leftover.close()
    with psycopg.connect(postgres_server.admin_url) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert name not in names
