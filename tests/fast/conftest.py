"""The fast suite's hotline: a real `Server` (real PostgreSQL, real ARI client and engine) talking
to the fake ARI server over real HTTP + WebSocket; and the database behind a TCP proxy the tests
make slow or dead."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg
import pytest
import pytest_asyncio

from agi_app.config import Settings
from agi_app.db.pool import connection
from agi_app.db.repositories import customers as customer_repo
from agi_app.db.repositories.calls import list_calls
from agi_app.directory.csv_import import parse_customers
from agi_app.flows.loader import demo_flow_path
from agi_app.flows.model import FlowSet
from agi_app.serve.app import Server
from tests.fake_ari.server import FakeAri
from tests.support import pg
from tests.support.cli import HOTLINE
from tests.support.demo import DEMO_CUSTOMERS, demo_flows
from tests.support.proxy import TcpProxy


async def import_demo_customers(dsn: str) -> None:
    parsed = parse_customers(DEMO_CUSTOMERS.read_text(encoding="utf-8"))
    assert not parsed.errors, parsed.errors
    async with connection(dsn) as conn:
        await customer_repo.import_customers(conn, parsed.customers)


@dataclass
class Hotline:
    server: Server
    ari: FakeAri
    dsn: str
    shutdown: asyncio.Event
    task: asyncio.Task[None]

    async def call(self, caller: str, dnis: str = "95000") -> str:
        return await self.ari.place_call(caller, dnis)

    async def heard(self, call_id: str, uri: str, timeout: float = 5.0) -> None:
        """Wait until the call has been played `uri`."""
        await self.ari.wait_for(lambda: uri in self.played(call_id), timeout)

    async def wait_ended(self, call_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the call's journey is closed and written; return its `calls list` row."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with connection(self.dsn) as conn:
            while True:
                await self.server.sink.flush()
                rows = await list_calls(conn, call_id=call_id)
                if rows and rows[0]["outcome"] and call_id not in self.server.calls.sessions:
                    return rows[0]
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"call {call_id} did not end: {rows}")
                await asyncio.sleep(0.02)

    def played(self, call_id: str) -> list[str]:
        return self.ari.channel(call_id).played

    async def stop(self, timeout: float = 20.0) -> None:
        """Shut the server down as SIGTERM does, and wait until it has."""
        self.shutdown.set()
        await asyncio.wait_for(self.task, timeout)


def settings_for(ari: FakeAri, dsn: str, tmp_path: Path, **overrides: Any) -> Settings:
    """A server's settings for one test: its files (spilled journeys, cached menus, speech) under
    `tmp_path` unless `overrides` say otherwise."""
    overrides.setdefault("state_dir", str(tmp_path / "state"))
    overrides.setdefault("sounds_root", str(tmp_path / "sounds"))
    # Free ports: servers of tests running at the same time (several checkouts, several workers)
    # must not fight over the default AGI and metrics addresses.
    overrides.setdefault("agi_listen", "127.0.0.1:0")
    overrides.setdefault("metrics_listen", "127.0.0.1:0")
    return Settings(dsn=dsn, ari_url=ari.url, ari_user="hotline", ari_password="hotline-dev",
                    shutdown_grace_s=2.0, **overrides)


async def start_hotline(ari: FakeAri, dsn: str, settings: Settings, flows: FlowSet | None = None, *,
                        published: bool = False) -> Hotline:
    """A running server: with the demo menus, or given `flows`, or (published=True) the active
    published version with hot reload."""
    server = await Server.start(settings, flows=None if published else flows or demo_flows())
    shutdown = asyncio.Event()
    task = asyncio.create_task(server.run(shutdown))
    await ari.wait_connected()
    return Hotline(server, ari, dsn, shutdown, task)


@asynccontextmanager
async def running_hotline(ari: FakeAri, dsn: str, settings: Settings, flows: FlowSet | None = None
                          ) -> AsyncIterator[Hotline]:
    """`start_hotline`, stopped when the block ends."""
    line = await start_hotline(ari, dsn, settings, flows)
    try:
        yield line
    finally:
        await line.stop()


def serve_process(ari: FakeAri, dsn: str, tmp_path: Path, *,
                  stderr: IO[str] | int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """`hotline serve` on the demo menus in a process of its own, for a test to kill or replace."""
    env = {"HOTLINE_DSN": dsn, "HOTLINE_ARI_URL": ari.url, "HOTLINE_ARI_USER": "hotline",
           "HOTLINE_ARI_PASSWORD": "hotline-dev", "HOTLINE_SOUNDS_ROOT": str(tmp_path / "sounds")}
    return subprocess.Popen([HOTLINE, "serve", "--flows-file", str(demo_flow_path())],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=stderr)


@pytest_asyncio.fixture
async def hotline(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> AsyncIterator[Hotline]:
    await import_demo_customers(dsn)
    fake_ari.media_duration = lambda uri: 0.05
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path))
    yield line
    await line.stop()


@pytest_asyncio.fixture
async def db_proxy() -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the test cluster (`db_proxy.through(dsn)`), to slow or cut it."""
    proxy = TcpProxy("127.0.0.1", int(pg.PORT))
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def db(session_dsn: str) -> Iterator[str]:
    """The session database, emptied, for plain (not async) tests: click's CliRunner runs
    `asyncio.run` inside."""
    asyncio.run(pg.truncate(session_dsn))
    yield session_dsn


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with connection(dsn) as conn:
        return await conn.fetch(sql, *args)


async def every_table(dsn: str) -> str:
    """Every row of every table of the database, as text (to show a secret is stored nowhere)."""
    tables = await fetch(dsn, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    dumped = []
    for (table,) in tables:
        rows = await fetch(dsn, f'SELECT t::text AS row FROM "{table}" t')  # noqa: S608 - names from the catalogue
        dumped += [f"{table}: {r['row']}" for r in rows]
    return "\n".join(dumped)


def without_times(text: str) -> str:
    """Text without clock times and their fractions of seconds, where a secret's digits turn up by
    chance (a timestamp's microseconds held a 4-digit PIN suffix once): for scans of `every_table`
    and the log."""
    return re.sub(r"\d{2}:\d{2}:\d{2}([.,]\d+)?", "", text)


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """`fetch` for plain tests."""
    return asyncio.run(fetch(dsn, sql, *args))
