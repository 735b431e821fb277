"""`hotline serve`: wiring of the process — database, ARI, call engine, signals.

Start-up fails fast and clearly when PostgreSQL or Asterisk cannot be reached. SIGTERM/SIGINT
drain: new calls go to the dialplan fallback, calls in progress get `shutdown_grace_s` to finish
and are then handed to the dialplan too — none is cut.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from agi_app.ari.client import AriClient, AriError
from agi_app.config import Settings
from agi_app.db.journey_writer import PgJourneySink
from agi_app.db.pool import create_pool
from agi_app.db.repositories import customers
from agi_app.directory.service import Directory
from agi_app.engine.call import HotlineCall
from agi_app.engine.call_state import CallStateLoader
from agi_app.engine.dispatcher import Dispatcher
from agi_app.flows.loader import demo_flow_path, load_file
from agi_app.flows.model import FlowSet
from agi_app.logs import log_event
from agi_app.media.resolver import MediaResolver, silent_sounds
from agi_app.media.tts import SpeechSynthesizer

log = logging.getLogger("hotline.serve")

REPO_SOUNDS = Path(__file__).resolve().parents[2] / "sounds"


class StartupError(Exception):
    """A dependency is missing at start; the message says which and what to do."""


@dataclass
class Server:
    """The running pieces, kept together so tests can start and stop a real server in-process."""

    settings: Settings
    pool: asyncpg.Pool
    client: AriClient
    sink: PgJourneySink
    dispatcher: Dispatcher
    flows: FlowSet

    @classmethod
    async def start(cls, settings: Settings, *, flows: FlowSet | None = None) -> Server:
        settings.require("dsn", "ari_user", "ari_password")
        try:
            pool = await create_pool(settings.dsn, budget_s=settings.db_budget_ms / 1000)
        except Exception as exc:
            raise StartupError(str(exc)) from exc
        client = AriClient(settings.ari_url, settings.ari_user, settings.ari_password, settings.ari_app,
                           timeout=settings.ari_budget_ms / 1000)
        await client.open()
        try:
            info = await client.asterisk_info()
        except AriError as exc:
            await client.close()
            await pool.close()
            raise StartupError(f"cannot reach Asterisk ARI at {settings.ari_url}: {exc}") from exc
        if flows is None:
            flows = load_file(Path(settings.flows_file) if settings.flows_file else demo_flow_path())[0]
        sink = PgJourneySink(pool, budget_s=settings.db_budget_ms / 1000)
        sink.start()
        speech = SpeechSynthesizer(Path(settings.sounds_root)) if settings.sounds_root else None
        media = MediaResolver(speech, silent=silent_sounds(REPO_SOUNDS / "prompts.yaml"))
        directory = Directory(lambda phone: customers.find_by_phone(pool, phone),
                              budget_s=settings.lookup_budget_ms / 1000)
        handler = HotlineCall(CallStateLoader(directory, pool), lambda: server.flows, media)
        server = cls(settings, pool, client, sink, Dispatcher(client, handler, sink), flows)
        log_event(log, "serve_started", app=settings.ari_app, ari=settings.ari_url,
                  asterisk=info.get("system", {}).get("version"), menu_version=flows.version)
        return server

    async def run(self, shutdown: asyncio.Event) -> None:
        """Serve until `shutdown` is set, then drain calls and close everything."""
        stop_events = asyncio.Event()
        events = asyncio.create_task(self.dispatcher.run(stop_events))
        waiter = asyncio.create_task(shutdown.wait())
        await asyncio.wait({events, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        await self.dispatcher.drain(self.settings.shutdown_grace_s)
        stop_events.set()
        await asyncio.wait({events}, timeout=5)
        events.cancel()
        await self.close()

    async def close(self) -> None:
        await self.sink.close()
        await self.client.close()
        await self.pool.close()
        log_event(log, "serve_stopped")


async def serve_forever(settings: Settings) -> None:
    server = await Server.start(settings)
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.set)
    await server.run(shutdown)
