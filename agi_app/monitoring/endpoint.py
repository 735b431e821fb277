"""The scrape endpoint: GET /metrics in Prometheus text format, on a small aiohttp server of its own
(the wallboard's pages too, `monitoring/wallboard.py`, when the server publishes a live view).

Its own listener (HOTLINE_METRICS_LISTEN, loopback by default), apart from anything callers reach.
Rendering the text reads counters and a few attributes: no I/O, so it runs on the event loop.
"""

from __future__ import annotations

import logging

from aiohttp import web

from agi_app.logs import log_event
from agi_app.monitoring.metrics import CONTENT_TYPE, HotlineMetrics
from agi_app.monitoring.wallboard import Wallboard

log = logging.getLogger("hotline.metrics")


class MetricsEndpoint:
    def __init__(self, metrics: HotlineMetrics, host: str, port: int, wallboard: Wallboard | None = None) -> None:
        self._metrics = metrics
        self._wallboard = wallboard
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; an OSError (address in use, not available) if it cannot, with nothing left open."""
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        if self._wallboard is not None:
            self._wallboard.add_routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log_event(log, "metrics_listening", url=self.url)

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the port the system chose when configured with port 0)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the metrics endpoint is not listening")
        host, port = self._runner.addresses[0][:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _scrape(self, _: web.Request) -> web.Response:
        return web.Response(body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})
