"""The asyncpg pool and the time budget every database call runs under."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg

from agi_app.config import DEFAULTS, redact_dsn


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached (or answered too slowly) within the budget."""


async def create_pool(dsn: str, *, budget_s: float = DEFAULTS.db_budget_s, min_size: int = 1, max_size: int = 10,
                      lazy: bool = False,
                      on_connect: Callable[[asyncpg.Connection], Awaitable[None]] | None = None) -> asyncpg.Pool:
    """Open a pool, failing fast with a clear message if the server is not there.

    `lazy=True` opens no connection now (min_size 0), so it succeeds while PostgreSQL is down: each
    use connects — under its caller's time budget — and the pool works again as soon as the server
    is back (`hotline serve` starting during an outage). Connections are then made on demand only.
    `on_connect` runs on each new connection (the server's metrics add their query logger there).
    """
    if not dsn:
        raise DatabaseUnavailable("no database configured (HOTLINE_DSN)")
    try:
        async with asyncio.timeout(max(budget_s * 5, 5.0)):
            return await asyncpg.create_pool(dsn, min_size=0 if lazy else min_size, max_size=max_size,
                                             command_timeout=budget_s * 5, init=on_connect, reset=_keep_session)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {_safe_dsn(dsn)}: {exc}") from exc


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """What a released pool connection is reset with, beyond asyncpg's own (it rolls back a
    transaction left open and forgets listeners): nothing. The default session reset (advisory
    locks, cursors, LISTEN, settings) is one more round trip per release — per journey write, per
    lookup — and no code of ours leaves session state on a pool connection: SET LOCAL only, and
    LISTEN and advisory locks on connections of their own (`serve/reloader.py`, `db/migrate.py`)."""


@asynccontextmanager
async def connection(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A single connection for admin commands."""
    try:
        async with asyncio.timeout(10):
            conn = await asyncpg.connect(dsn)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {_safe_dsn(dsn)}: {exc}") from exc
    try:
        yield conn
    finally:
        await conn.close()


def _safe_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    return redact_dsn(dsn)
