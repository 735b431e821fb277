"""The wallboard: GET /wallboard (one static page, no CDN) and GET /wallboard/events (server-sent
events: the merged live view of every server, once a second), on the metrics endpoint's loopback
listener (HOTLINE_METRICS_LISTEN).

The page only reads what the publisher already merged (`merged()`): an open wallboard costs no
query. At most `MAX_VIEWERS` streams at once; a stream ends when its viewer leaves or the server
stops (`close`, before the listener waits for its handlers).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from importlib.resources import files

from aiohttp import web

from agi_app.monitoring.live import Snapshot

MAX_VIEWERS = 16
PAGE = files("agi_app.monitoring").joinpath("wallboard.html")


class Wallboard:
    def __init__(self, merged: Callable[[], Snapshot | None], *, every_s: float) -> None:
        self._merged = merged
        self._every_s = every_s
        self._viewers = 0
        self._closing = asyncio.Event()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/wallboard", self._page)
        app.router.add_get("/wallboard/events", self._events)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, _: web.Application) -> None:
        self._closing.set()

    async def _page(self, _: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(encoding="utf-8"), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self._viewers >= MAX_VIEWERS:
            raise web.HTTPServiceUnavailable(text="too many wallboards open")
        self._viewers += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        try:
            await response.prepare(request)
            while not self._closing.is_set():
                view = self._merged()
                if view is not None:
                    data = json.dumps(view, ensure_ascii=False)
                    await response.write(f"event: live\ndata: {data}\n\n".encode())
                try:
                    await asyncio.wait_for(self._closing.wait(), self._every_s)
                except TimeoutError:
                    pass
        except ConnectionResetError:  # the viewer left
            pass
        finally:
            self._viewers -= 1
        return response
