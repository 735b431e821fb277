"""Following changes made in the database while serving, on one LISTEN connection: menu
publications (hot reload) and the start facts' announcements (`db/start_facts_cache.py`).

Hot reload: on a `hotline_menus` notification load the active version, validate it
with this server's code, and swap it in for new calls. Calls in progress keep the FlowSet they
pinned at their start; an invalid version is refused and the current one stays.

The listening connection is re-established with backoff if it drops, and a reload check runs
after every (re)connection, so a notification missed while disconnected is not lost. Each version
swapped in is written to the menu cache, the one a start during a database outage serves; after
such a degraded start, the first connection is the database's return (`serve_recovered`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

import asyncpg

from agi_app.budget import backoff_s
from agi_app.db import start_facts_cache
from agi_app.db.failures import DB_FAILURES
from agi_app.db.repositories import menus
from agi_app.db.start_facts_cache import StartFactsCache
from agi_app.flows.loader import FlowFileError, load_document
from agi_app.flows.model import FlowSet
from agi_app.logs import log_event
from agi_app.serve.menu_cache import MenuCache

log = logging.getLogger("hotline.reload")


class ChangeListener:
    """The one LISTEN connection a server follows changes by: menu publications (`reloader`, with
    hot reload) and the start facts' announcements (`facts`, the calendar/emergency/notice cache,
    trusted only while this connection listens)."""

    def __init__(self, dsn: str, *, budget_s: float, reloader: MenuReloader | None = None,
                 facts: StartFactsCache | None = None) -> None:
        self.dsn = dsn
        self.budget_s = budget_s
        self.reloader = reloader
        self.facts = facts
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Listen and follow until cancelled."""
        attempt = 0
        while True:
            conn: asyncpg.Connection | None = None
            try:
                async with asyncio.timeout(self.budget_s):
                    conn = listening = await asyncpg.connect(self.dsn)
                lost = asyncio.Event()
                listening.add_termination_listener(lambda _c, event=lost: event.set())  # type: ignore[misc]
                channels = []
                if self.facts is not None:
                    await listening.add_listener(start_facts_cache.CHANNEL, self.facts.invalidate)
                    self.facts.listening()
                    channels.append(start_facts_cache.CHANNEL)
                if self.reloader is not None:
                    await listening.add_listener(menus.CHANNEL, lambda *_args: self._wake.set())
                    channels.append(menus.CHANNEL)
                log_event(log, "menus_listening", channel=",".join(channels))
                attempt = 0
                self._wake.clear()
                if self.reloader is not None:
                    await self.reloader.connected()
                while not lost.is_set():
                    waiter = asyncio.ensure_future(self._wake.wait())
                    closer = asyncio.ensure_future(lost.wait())
                    await asyncio.wait({waiter, closer}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    closer.cancel()
                    if self._wake.is_set() and self.reloader is not None:
                        self._wake.clear()
                        await self.reloader.reload_now()
                log_event(log, "menus_listen_lost", level=logging.WARNING)
            except DB_FAILURES as exc:
                log_event(log, "menus_listen_failed", level=logging.WARNING, error=type(exc).__name__)
            finally:
                if self.facts is not None:
                    self.facts.deaf()
                if conn is not None and not conn.is_closed():
                    await conn.close()
            attempt += 1
            await asyncio.sleep(backoff_s(attempt, first_s=1.0, cap_s=10.0))


class MenuReloader:
    def __init__(self, pool: asyncpg.Pool, current: Callable[[], FlowSet],
                 swap: Callable[[FlowSet], None], *, services: Collection[str], budget_s: float,
                 cache: MenuCache | None = None, degraded: bool = False) -> None:
        self.pool = pool
        self.current = current
        self.swap = swap
        self.services = services
        self.budget_s = budget_s
        self.cache = cache
        self.degraded = degraded  # started without the database: serving cached menus, unknown callers
        self.refused: list[int] = []

    async def connected(self) -> None:
        """The listener is (back) in place: a publication may have been missed while it was not."""
        await self.reload_now()
        if self.degraded:
            self.degraded = False
            log_event(log, "serve_recovered", menu_version=self.current().version)

    async def reload_now(self) -> bool:
        """Load the active version if it differs from the one served; False if refused or unchanged."""
        try:
            async with asyncio.timeout(self.budget_s):
                stored = await menus.get_active(self.pool)
        except DB_FAILURES as exc:
            log_event(log, "menus_reload_failed", level=logging.ERROR, error=type(exc).__name__)
            return False
        serving = self.current().version
        if stored is None or stored.version == serving:
            return False
        try:  # in a thread: rendering every prompt takes ~0.1 s that calls in progress must not wait for
            flows, _ = await asyncio.to_thread(load_document, stored.document, file=f"version {stored.version}",
                                               services=self.services, version=stored.version)
        except FlowFileError as exc:
            self.refused.append(stored.version)
            log_event(log, "menus_reload_refused", level=logging.ERROR, version=stored.version, serving=serving,
                      problems=len(exc.issues), first=str(exc.issues[0]))
            return False
        self.swap(flows)
        log_event(log, "menus_reloaded", version=stored.version, previous=serving)
        if self.cache is not None:
            await self.cache.save(stored.version, stored.document)
        return True
