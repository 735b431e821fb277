"""The fast suite's hotline: a real `Server` (real PostgreSQL, real ARI client and engine) talking
to the fake ARI server over real HTTP + WebSocket."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio

from agi_app.config import Settings
from agi_app.db.pool import connection
from agi_app.db.repositories import customers as customer_repo
from agi_app.db.repositories.calls import list_calls
from agi_app.directory.csv_import import parse_customers
from agi_app.flows.loader import demo_flow_path, load_document, read_document
from agi_app.flows.model import FlowSet
from agi_app.serve.app import Server
from tests.fake_ari.server import FakeAri

REPO = Path(__file__).resolve().parents[2]
DEMO_CUSTOMERS = REPO / "config" / "demo" / "customers.csv"


def demo_flows(*, timeout: float = 0.3, version: int | None = 1) -> FlowSet:
    """The demo menus with short timeouts so that timeout paths run in a fraction of a second."""
    doc: dict[str, Any] = copy.deepcopy(read_document(demo_flow_path()))
    for flow in doc["flows"].values():
        for node in flow["nodes"].values():
            if node["type"] == "menu":
                node["timeout"] = timeout
                node["inter_digit_timeout"] = timeout
    return load_document(doc, version=version)[0]


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


def settings_for(ari: FakeAri, dsn: str, tmp_path: Path, **overrides: Any) -> Settings:
    overrides.setdefault("state_dir", str(tmp_path / "state"))  # spilled journeys, cached menus: per test
    return Settings(dsn=dsn, ari_url=ari.url, ari_user="hotline", ari_password="hotline-dev",
                    sounds_root=str(tmp_path / "sounds"), shutdown_grace_s=2.0, **overrides)


async def start_hotline(ari: FakeAri, dsn: str, settings: Settings, flows: FlowSet | None = None, *,
                        published: bool = False) -> Hotline:
    """A running server: with the demo menus, or given `flows`, or (published=True) the active
    published version with hot reload."""
    server = await Server.start(settings, flows=None if published else flows or demo_flows())
    shutdown = asyncio.Event()
    task = asyncio.create_task(server.run(shutdown))
    await ari.wait_connected()
    return Hotline(server, ari, dsn, shutdown, task)


@pytest_asyncio.fixture
async def hotline(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> AsyncIterator[Hotline]:
    await import_demo_customers(dsn)
    fake_ari.media_duration = lambda uri: 0.05
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path))
    yield line
    line.shutdown.set()
    await asyncio.wait_for(line.task, 15)


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with connection(dsn) as conn:
        return await conn.fetch(sql, *args)
