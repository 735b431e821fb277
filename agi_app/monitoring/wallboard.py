"""The wallboard: GET /wallboard (one static page, no CDN), GET /wallboard/events (server-sent
events: the merged live view of every server, once a second) and GET /wallboard/flow.svg (the menus
in use as `hotline menus graph` draws them; 404 when they cannot be drawn), on the metrics endpoint's
loopback listener (HOTLINE_METRICS_LISTEN).

The page only reads what the publisher already merged (`merged()`): an open wallboard costs no
query. At most `MAX_VIEWERS` streams at once; a stream ends when its viewer leaves, stops reading
(an update not taken within `write_budget_s`) or the server stops (aiohttp's on_shutdown, before the
listener waits for its handlers).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from importlib.resources import files

from aiohttp import web

from agi_app.monitoring.live import Snapshot

MAX_VIEWERS = 16
PAGE = files("agi_app.monitoring").joinpath("wallboard.html")


class Wallboard:
    def __init__(self, merged: Callable[[], Snapshot | None], *, every_s: float, write_budget_s: float,
                 flow_svg: Callable[[], Awaitable[str | None]] | None = None) -> None:
        self._merged = merged
        self._every_s = every_s
        self._write_budget_s = write_budget_s
        self._html = PAGE.read_text(encoding="utf-8")  # once, before serving: no file I/O on the loop
        self._flow_svg = flow_svg
        self._viewers = 0
        self._closing = asyncio.Event()

    @property
    def viewers(self) -> int:
        """Event streams open now."""
        return self._viewers

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/wallboard", self._page)
        app.router.add_get("/wallboard/events", self._events)
        app.router.add_get("/wallboard/flow.svg", self._flow)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, _: web.Application) -> None:
        self._closing.set()

    async def _page(self, _: web.Request) -> web.Response:
        return web.Response(text=self._html, content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def _flow(self, _: web.Request) -> web.Response:
        svg = await self._flow_svg() if self._flow_svg is not None else None
        if svg is None:
            raise web.HTTPNotFound(text="no drawing of the menus in use")
        return web.Response(text=svg, content_type="image/svg+xml", headers={"Cache-Control": "no-store"})

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
                    async with asyncio.timeout(self._write_budget_s):
                        await response.write(f"event: live\ndata: {data}\n\n".encode())
                try:
                    async with asyncio.timeout(self._every_s):
                        await self._closing.wait()
                except TimeoutError:
                    pass
        except (ConnectionResetError, TimeoutError):  # the viewer left, or stopped reading
            pass
        finally:
            self._viewers -= 1
        return response
