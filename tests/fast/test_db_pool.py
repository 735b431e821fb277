"""The server's asyncpg pool: a released connection goes back without the session reset round trip
(nothing of ours leaves session state on one), yet never with a transaction still open."""

from __future__ import annotations

import asyncpg

from agi_app.db.pool import create_pool
from tests.fast.conftest import fetch


async def test_a_released_connection_costs_no_reset_query_and_is_never_left_in_a_transaction(dsn: str) -> None:
    statements: list[str] = []

    async def logged(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda query: statements.append(query.query))

    async with await create_pool(dsn, min_size=1, max_size=1, on_connect=logged) as pool:
        for _ in range(3):
            assert await pool.fetchval("SELECT 1") == 1
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")  # left open by mistake
            await conn.execute("INSERT INTO calls (call_id, started_at) VALUES ('uncommitted', now())")
        assert await pool.fetchval("SELECT count(*) FROM calls") == 0
    assert not await fetch(dsn, "SELECT 1 FROM calls")
    assert not [s for s in statements if "RESET ALL" in s or "UNLISTEN" in s], statements
    assert "ROLLBACK" in statements
