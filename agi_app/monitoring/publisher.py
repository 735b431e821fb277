"""Publishing this server's live snapshot every second, and reading everyone's back.

Each round writes our row, reads every fresh row and today's totals (`day_totals`) into `merged`
(what the wallboard streams): one write and two reads per second whatever the number of wallboards
open. Each statement runs within its budget (`budget.within`): a slow database costs a stale view,
never a call. While the database does not answer, `merged` still shows this server's own calls as
they move (`all_servers` false) and the totals marked stale. Failures are logged when they start
and when they stop, not every second. `close` deletes our row, so a server that stops leaves the
view at once (one that dies ages out after the stale age).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from agi_app.budget import within
from agi_app.db.failures import DB_FAILURES
from agi_app.logs import log_event
from agi_app.monitoring import live_store
from agi_app.monitoring.day_totals import DayTotalsKeeper, read_day_totals
from agi_app.monitoring.live import Snapshot, merge

log = logging.getLogger("hotline.live")


def this_server(configured: str = "") -> str:
    """The configured server id (HOTLINE_SERVER_ID), else host:pid — unique among running servers;
    a restart with the same id takes its row over."""
    return configured or f"{socket.gethostname()}:{os.getpid()}"


class Trouble:
    """One kind of failure, logged when it starts and when it stops (not every round)."""

    def __init__(self, event: str, server_id: str) -> None:
        self._event, self._server_id = event, server_id
        self.failing = False

    def failed(self, exc: BaseException) -> None:
        if not self.failing:
            log_event(log, f"{self._event}_failed", level=logging.WARNING, server=self._server_id,
                      error=type(exc).__name__)
        self.failing = True

    def ok(self) -> None:
        if self.failing:
            log_event(log, f"{self._event}_resumed", server=self._server_id)
        self.failing = False


class LivePublisher:
    def __init__(self, pool: asyncpg.Pool, snapshot: Callable[[], Awaitable[Snapshot]], *, server_id: str,
                 every_s: float, budget_s: float, stale_s: float) -> None:
        self._pool = pool
        self._snapshot = snapshot
        self.server_id = server_id
        self._every_s, self._budget_s, self._stale_s = every_s, budget_s, stale_s
        self.merged: Snapshot | None = None
        self._publishing = Trouble("live_publish", server_id)
        self._counting = Trouble("live_totals", server_id)
        self._totals = DayTotalsKeeper()
        self._write: asyncio.Future[None] | None = None  # the last write, perhaps still finishing past its budget

    async def run(self) -> None:
        """Until cancelled: a round every `every_s` seconds (measured start to start)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.round()
            await asyncio.sleep(max(self._every_s - (loop.time() - started), 0.0))

    async def round(self) -> None:
        own = {"server": self.server_id, "at": datetime.now(UTC).isoformat(), **await self._snapshot()}
        try:
            self._write = asyncio.ensure_future(live_store.publish(self._pool, self.server_id, own))
            await within(self._budget_s, self._write, what="live_publish")
            rows = await within(self._budget_s, live_store.fresh(self._pool, self._stale_s), what="live_read")
        except DB_FAILURES as exc:
            self._publishing.failed(exc)
            self.merged = {**merge([own], self._totals.failed()), "all_servers": False}
            return
        self._publishing.ok()
        self.merged = {**merge(rows, await self._day_totals()), "all_servers": True}

    async def _day_totals(self) -> Snapshot:
        try:
            totals = await within(self._budget_s, read_day_totals(self._pool), what="live_totals")
        except DB_FAILURES as exc:
            self._counting.failed(exc)
            return self._totals.failed()
        self._counting.ok()
        return self._totals.read(totals)

    async def close(self) -> None:
        """Our row deleted (within the budget: if the database does not answer, the row ages out).
        A write cut at its budget may still be finishing: it ends first, or it would put the row back."""
        if self._write is not None and not self._write.done():
            await asyncio.wait({self._write}, timeout=self._budget_s)
        try:
            await within(self._budget_s, live_store.withdraw(self._pool, self.server_id), what="live_withdraw")
        except DB_FAILURES as exc:
            log_event(log, "live_withdraw_failed", level=logging.WARNING, server=self.server_id,
                      error=type(exc).__name__)
