"""Fixtures shared by both suites: a real PostgreSQL database per session, the fake ARI server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.support import pg

pytest_plugins = ["tests.fake_ari.pytest_plugin"]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[None]:
    """The throwaway cluster; stopped at the end only if this session started it — and never by one of
    several parallel workers (pytest -n), which cannot know that the others are done with it."""
    started = pg.ensure_cluster()
    yield
    if started and "PYTEST_XDIST_WORKER" not in os.environ:
        pg.stop_cluster()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def session_dsn(pg_cluster: None) -> AsyncIterator[str]:
    dsn = await pg.create_database()
    yield dsn
    await pg.drop_database(dsn)


@pytest_asyncio.fixture
async def dsn(session_dsn: str) -> AsyncIterator[str]:
    """A migrated, empty database for one test."""
    await pg.truncate(session_dsn)
    yield session_dsn
