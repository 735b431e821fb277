"""The monitoring one `hotline serve` runs: its metrics, the scrape endpoint and the database probe;
and, given a `LivePublisher`, the live view's publishing and the wallboard on the same listener.

Monitoring never stops the hotline: if the metrics address cannot be listened on (in use, say by
another server on the same host), that is logged as an error and calls are served all the same.
A malformed address is a configuration error, found before anything starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agi_app.config import Settings, host_port
from agi_app.logs import log_event
from agi_app.monitoring.endpoint import MetricsEndpoint
from agi_app.monitoring.metrics import HotlineMetrics
from agi_app.monitoring.probe import AnswerProbe
from agi_app.monitoring.publisher import LivePublisher
from agi_app.monitoring.wallboard import Wallboard

log = logging.getLogger("hotline.metrics")


class Monitoring:
    def __init__(self, settings: Settings) -> None:
        """Raises ConfigError when HOTLINE_METRICS_LISTEN is not host:port."""
        self._listen = host_port("metrics_listen", settings.metrics_listen)
        self._settings = settings
        self.metrics = HotlineMetrics()
        self.endpoint: MetricsEndpoint | None = None
        self.probe: AnswerProbe | None = None
        self.live: LivePublisher | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._live_task: asyncio.Task[None] | None = None

    async def start(self, database: Callable[[], Awaitable[object]], live: LivePublisher | None = None,
                    flow_svg: Callable[[], Awaitable[str | None]] | None = None) -> None:
        """Listen for scrapes and start probing `database` (a trivial statement); with `live`, publish
        the live view every second and serve the wallboard (with `flow_svg`, the menus drawn)."""
        self.probe = probe = AnswerProbe("database", database, every_s=self._settings.metrics_probe_s,
                                         budget_s=self._settings.db_budget_s)
        self.metrics.watch_connection("database", lambda: probe.up)
        self._probe_task = asyncio.create_task(probe.run(), name="database-probe")
        wallboard = None
        if live is not None:
            self.live = live
            self._live_task = asyncio.create_task(live.run(), name="live-publisher")
            wallboard = Wallboard(lambda: live.merged, every_s=self._settings.live_publish_s,
                                  write_budget_s=self._settings.live_stale_s, flow_svg=flow_svg)
        endpoint = MetricsEndpoint(self.metrics, *self._listen, wallboard)
        try:
            await endpoint.start()
        except OSError as exc:
            log_event(log, "metrics_unavailable", level=logging.ERROR, listen=self._settings.metrics_listen,
                      error=exc.strerror or type(exc).__name__, calls="served")
            return
        self.endpoint = endpoint

    async def close(self) -> None:
        tasks = {t for t in (self._probe_task, self._live_task) if t is not None}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)  # ours: not left running; our caller's cancel propagates
        for task in tasks:  # one that died earlier is said now (stopping it did not fail)
            if not task.cancelled() and (failure := task.exception()) is not None:
                log_event(log, "task_failed", level=logging.ERROR, task=task.get_name(), error=type(failure).__name__,
                          detail=str(failure)[:200])
        if self.live is not None:
            await self.live.close()  # our row leaves the live view
        if self.endpoint is not None:
            await self.endpoint.close()
