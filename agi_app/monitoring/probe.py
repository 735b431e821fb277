"""Whether PostgreSQL answers, checked on a period: the database's `hotline_connection_up`.

A pool has no "connected" state to read (it connects on demand), and an idle server makes no query
whose failure would tell; so a trivial statement is run every `every_s`, under the database budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agi_app.logs import log_event

log = logging.getLogger("hotline.metrics")


class AnswerProbe:
    """Runs `check` every `every_s`; `up` is whether the last one answered within `budget_s`."""

    def __init__(self, peer: str, check: Callable[[], Awaitable[object]], *, every_s: float, budget_s: float) -> None:
        self.peer = peer
        self._check = check
        self._every_s = every_s
        self._budget_s = budget_s
        self._last: bool | None = None  # not checked yet

    @property
    def up(self) -> bool:
        return bool(self._last)

    async def check_once(self) -> bool:
        try:
            async with asyncio.timeout(self._budget_s):
                await self._check()
            up, error = True, None
        except Exception as exc:  # noqa: BLE001 - any failure means "not answering"; said once, below
            up, error = False, type(exc).__name__
        if up != self._last:
            log_event(log, "peer_up" if up else "peer_down", level=logging.INFO if up else logging.WARNING,
                      peer=self.peer, error=error)
        self._last = up
        return up

    async def run(self) -> None:
        """Check until cancelled."""
        while True:
            await self.check_once()
            await asyncio.sleep(self._every_s)
