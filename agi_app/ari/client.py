"""A small asyncio ARI client on aiohttp: REST with time budgets, events over one WebSocket.

Why our own: ari-py is synchronous, and asyncari put credentials in logged URLs, had no
reconnect and answered 2-5x slower in our measurements (see README). This module is the only
place that knows ARI's HTTP and WebSocket details; credentials travel in an Authorization
header, never in a URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from agi_app.ari.events import ApplicationReplaced, AriEvent, StreamConnected, parse_event
from agi_app.budget import backoff_s
from agi_app.config import DEFAULTS

log = logging.getLogger("hotline.ari")


class AriError(Exception):
    """An ARI request failed; `status` is the HTTP status (0 when Asterisk was not reached)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"ARI {method} {path} -> {status or 'unreachable'}: {message}")
        self.method, self.path, self.status, self.message = method, path, status, message


class AriNotFound(AriError):
    """404: the channel/playback is gone (typically the caller hung up)."""


class AriNotInStasis(AriError):
    """409/422: the channel exists but is no longer ours (left Stasis)."""


class AriUnavailable(AriError):
    """Asterisk could not be reached within the time budget."""


class ApplicationTakenOver(Exception):
    """Another WebSocket took this Stasis application over (`ApplicationReplaced`): its events go
    there now. The reader stops instead of reconnecting, which would take the application back."""

    def __init__(self, app: str) -> None:
        super().__init__(f"ARI application {app!r} was taken over by another connection")
        self.app = app


def _error_for(method: str, path: str, status: int, message: str) -> AriError:
    if status == 404:
        return AriNotFound(method, path, status, message)
    if status in (409, 422):
        return AriNotInStasis(method, path, status, message)
    return AriError(method, path, status, message)


class AriClient:
    """REST calls and the event stream of one Stasis application."""

    def __init__(self, base_url: str, user: str, password: str, app: str, *,
                 timeout: float = DEFAULTS.ari_budget_s, handshake_timeout: float = DEFAULTS.ari_handshake_s,
                 pool_size: int = 40, trace_configs: Sequence[aiohttp.TraceConfig] = ()) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self._timeout = timeout
        self._handshake_timeout = handshake_timeout
        self._headers = {"Authorization": aiohttp.encode_basic_auth(user, password)}
        # Asterisk's HTTP server allows `sessionlimit` (default 100) sessions: stay well below.
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        self._trace_configs = list(trace_configs)  # observers of every request (the server's metrics)
        # Whether the event WebSocket is open now (the server's metrics read it).
        self.events_connected = False

    async def __aenter__(self) -> AriClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._pool_size, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(headers=self._headers, connector=connector,
                                                  trace_configs=self._trace_configs or None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("AriClient.open() was not called")
        return self._session

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Mapping[str, Any] | None = None, timeout: float | None = None) -> Any:
        """One REST call under a time budget; returns decoded JSON (or None for 204)."""
        url = f"{self.base_url}/ari{path}"
        budget = aiohttp.ClientTimeout(total=timeout or self._timeout)
        try:
            async with self.session.request(method, url, params=params, json=body,
                                            timeout=budget) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    try:
                        message = json.loads(text).get("message", text)
                    except (ValueError, AttributeError):
                        message = text
                    raise _error_for(method, path, resp.status, str(message))
                return json.loads(text) if text else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriUnavailable(method, path, 0, type(exc).__name__ + (f": {exc}" if str(exc) else "")) from exc

    # --- operations the engine needs (names follow ARI's own) ------------------------------
    async def asterisk_info(self) -> dict[str, Any]:
        return await self.request("GET", "/asterisk/info")

    @staticmethod
    def asterisk_identity(info: dict[str, Any]) -> str | None:
        """Which Asterisk answered `asterisk_info`: "systemname@entity_id" (two nodes on one machine
        share the entity id, not the system name); None if it did not say."""
        entity = (info.get("system") or {}).get("entity_id")
        return f"{(info.get('config') or {}).get('name') or ''}@{entity}" if entity else None

    async def application(self) -> dict[str, Any]:
        return await self.request("GET", f"/applications/{quote(self.app)}")

    async def channels(self) -> list[dict[str, Any]]:
        """Every channel Asterisk has now (ours or not)."""
        return await self.request("GET", "/channels")

    async def get_channel(self, channel_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/channels/{quote(channel_id)}")

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{quote(channel_id)}/answer")

    async def play(self, channel_id: str, media: Sequence[str], playback_id: str) -> dict[str, Any]:
        return await self.request("POST", f"/channels/{quote(channel_id)}/play/{quote(playback_id)}",
                                  params={"media": ",".join(media)})

    async def get_playback(self, playback_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/playbacks/{quote(playback_id)}")

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{quote(playback_id)}")

    async def record(self, channel_id: str, name: str, *, max_seconds: int, max_silence_seconds: int,
                     terminate_on: str = "#") -> dict[str, Any]:
        """Record what the caller says into `name`.wav after a beep; it ends at `terminate_on`, after
        `max_silence_seconds` of silence (0: never) or at `max_seconds`, and RecordingFinished says so.
        An existing recording of that name is never overwritten."""
        return await self.request("POST", f"/channels/{quote(channel_id)}/record", params={
            "name": name, "format": "wav", "maxDurationSeconds": str(max_seconds),
            "maxSilenceSeconds": str(max_silence_seconds), "ifExists": "fail", "beep": "true",
            "terminateOn": terminate_on})

    async def stop_recording(self, name: str) -> None:
        """End a live recording and keep what it has (DELETE would discard it)."""
        await self.request("POST", f"/recordings/live/{quote(name)}/stop")

    async def continue_in_dialplan(self, channel_id: str, context: str, extension: str,
                                   priority: int = 1) -> None:
        await self.request("POST", f"/channels/{quote(channel_id)}/continue",
                           params={"context": context, "extension": extension, "priority": str(priority)})

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        """Set a channel variable (the dialplan reads it once the channel has left Stasis). In the
        query string, as ARI takes it: never a secret."""
        await self.request("POST", f"/channels/{quote(channel_id)}/variable",
                           params={"variable": name, "value": value})

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"/channels/{quote(channel_id)}", params={"reason": reason})

    async def originate(self, endpoint: str, *, channel_id: str, app_args: Sequence[str], timeout_s: int,
                        other_channel_id: str | None = None, caller_id: str | None = None) -> dict[str, Any]:
        """Dial `endpoint` into this application: once answered, the channel (id `channel_id`)
        enters Stasis with `app_args`; unanswered after `timeout_s`, it is destroyed. A Local
        channel's second half gets `other_channel_id`. The request itself has the REST budget."""
        params = {"endpoint": endpoint, "app": self.app, "appArgs": ",".join(app_args),
                  "channelId": channel_id, "timeout": str(timeout_s)}
        if other_channel_id:
            params["otherChannelId"] = other_channel_id
        if caller_id:
            params["callerId"] = caller_id
        return await self.request("POST", "/channels", params=params)

    async def create_bridge(self, bridge_id: str, *, name: str = "") -> dict[str, Any]:
        """A mixing bridge (two or more channels hear each other)."""
        return await self.request("POST", "/bridges", params={"type": "mixing", "bridgeId": bridge_id,
                                                               "name": name or bridge_id})

    async def add_to_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None:
        await self.request("POST", f"/bridges/{quote(bridge_id)}/addChannel",
                           params={"channel": ",".join(channel_ids)})

    async def play_on_bridge(self, bridge_id: str, media: Sequence[str], playback_id: str) -> dict[str, Any]:
        """Media every channel in the bridge hears."""
        return await self.request("POST", f"/bridges/{quote(bridge_id)}/play/{quote(playback_id)}",
                                  params={"media": ",".join(media)})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{quote(bridge_id)}")

    # --- events --------------------------------------------------------------------------
    def events(self, *, max_backoff: float = 10.0, queue_size: int = 10_000) -> EventStream:
        """Start reading events (reconnecting with backoff); `StreamConnected` marks each (re)connection."""
        return EventStream(self, max_backoff=max_backoff, queue_size=queue_size)

    async def _read_forever(self, queue: asyncio.Queue[AriEvent], max_backoff: float) -> None:
        """Read events, reconnecting with jittered backoff; ends only by raising `ApplicationTakenOver`."""
        url = f"{self.base_url}/ari/events"
        params = {"app": self.app}
        attempt = 0
        while True:
            try:
                # aiohttp bounds the handshake only by the session's 300 s default: a listener that
                # accepts and never answers would hold every reconnect that long.
                async with asyncio.timeout(self._handshake_timeout):
                    ws = await self.session.ws_connect(url, params=params, heartbeat=15,
                                                       timeout=aiohttp.ClientWSTimeout(ws_close=self._timeout))
                async with ws:
                    self.events_connected = True
                    log.info("event=ari_connected app=%s url=%s", self.app, self.base_url)
                    await queue.put(StreamConnected("StreamConnected", self.app))
                    attempt = 0
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            try:
                                data = json.loads(msg.data)
                            except ValueError:
                                log.warning("event=ari_bad_message length=%d", len(msg.data))
                                continue
                            event = parse_event(data)
                            await queue.put(event)
                            if isinstance(event, ApplicationReplaced):
                                raise ApplicationTakenOver(self.app)
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
                self.events_connected = False
                log.warning("event=ari_disconnected app=%s", self.app)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self.events_connected = False
                log.warning("event=ari_connect_failed app=%s error=%s", self.app, type(exc).__name__)
            attempt += 1
            await asyncio.sleep(backoff_s(attempt, first_s=0.5, cap_s=max_backoff, jitter=True))


class EventStream:
    """The application's events, read by a background task into a bounded queue.

    The bound applies back-pressure to the socket instead of growing memory when the consumer
    is slow. `next()` returns None once `stop` is set; `close()` ends the reader.
    """

    def __init__(self, client: AriClient, *, max_backoff: float, queue_size: int) -> None:
        self._queue: asyncio.Queue[AriEvent] = asyncio.Queue(maxsize=queue_size)
        self._reader = asyncio.create_task(client._read_forever(self._queue, max_backoff), name="ari-events")

    async def next(self, stop: asyncio.Event) -> AriEvent | None:
        if not self._queue.empty():
            return self._queue.get_nowait()
        getter = asyncio.ensure_future(self._queue.get())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({getter, stopper, self._reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done and not getter.cancelled():
            return getter.result()
        if self._reader.done():
            self._reader.result()  # re-raise a reader failure
        return None

    async def close(self) -> None:
        """End the reader (its own failure, if any, was already raised by `next`)."""
        self._reader.cancel()
        await asyncio.wait({self._reader})  # a cancellation of *our* caller still propagates
        if not self._reader.cancelled():
            self._reader.exception()  # retrieved, so asyncio does not report it again
