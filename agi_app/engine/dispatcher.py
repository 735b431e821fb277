"""Routes ARI events to calls: one task per call, hangup cancels it, reconnect resyncs.

StasisStart creates a `CallSession` and its task; later events for that channel go to the
session; a hangup or StasisEnd cancels the task (structured cancellation: whatever the call is
awaiting — a prompt, a digit, a database lookup — stops at once). After the event WebSocket
reconnects, Asterisk does not resend StasisStart, so the dispatcher asks which channels are
still in the application: known ones resync, unknown ones (state lost) go to the dialplan
fallback rather than hearing dead air.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from agi_app.ari.channel import AriChannel
from agi_app.ari.client import AriClient, AriError
from agi_app.ari.events import (
    ApplicationReplaced,
    AriEvent,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
    StreamConnected,
)
from agi_app.engine.channel import ChannelGone
from agi_app.engine.journey import (
    CallRecord,
    Journey,
    JourneySink,
    outcome_when_caller_left,
    outcome_when_flow_ended,
)
from agi_app.engine.session import CallInfo, CallSession
from agi_app.logs import log_event

log = logging.getLogger("hotline.dispatcher")

CallHandler = Callable[[CallSession], Awaitable[None]]


@dataclass(frozen=True)
class Fallback:
    """Where calls go when we cannot serve them: app shutting down, state lost, internal error."""

    context: str = "hotline-fallback"
    extension: str = "s"


class Dispatcher:
    def __init__(self, client: AriClient, handler: CallHandler, sink: JourneySink, *,
                 fallback: Fallback = Fallback(), max_calls: int = 500) -> None:
        self.client = client
        self.handler = handler
        self.sink = sink
        self.fallback = fallback
        self.max_calls = max_calls
        self.sessions: dict[str, CallSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._draining = False
        self._background: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume events until `stop` is set."""
        stream = self.client.events()
        try:
            while (event := await stream.next(stop)) is not None:
                self.handle(event)
        finally:
            await stream.close()

    def handle(self, event: AriEvent) -> None:
        """Route one event (synchronous: routing never waits on I/O)."""
        if isinstance(event, StasisStart):
            self._start_call(event)
        elif isinstance(event, StreamConnected):
            self._spawn(self._resync())
        elif isinstance(event, ApplicationReplaced):
            log_event(log, "ari_application_replaced", level=logging.ERROR, app=self.client.app)
        else:
            session = self.sessions.get(event.channel_id or "")
            if session is None:
                return
            if isinstance(event, ChannelDtmfReceived):
                session.log("dtmf")  # never the digit: it may be a PIN typed ahead of its prompt
                session.on_dtmf(event.digit)
            elif isinstance(event, PlaybackFinished):
                session.on_playback_finished(event.playback.id)
            elif isinstance(event, ChannelHangupRequest | StasisEnd | ChannelDestroyed):
                self._end_of_channel(session, event.type)

    def _start_call(self, event: StasisStart) -> None:
        channel = event.channel
        if channel.id in self.sessions:
            return
        dnis = event.args[0] if event.args else channel.exten
        log_event(log, "stasis_start", call=channel.id, caller=channel.caller_number, dnis=dnis,
                  channel=channel.name)
        if self._draining or len(self._tasks) >= self.max_calls:
            reason = "draining" if self._draining else "at_capacity"
            log_event(log, "call_to_fallback", level=logging.WARNING, call=channel.id, reason=reason)
            self._spawn(self._send_to_fallback(channel.id))
            return
        info = CallInfo(call_id=channel.id, caller=channel.caller_number, dnis=dnis, channel_name=channel.name)
        record = CallRecord(call_id=channel.id, caller=channel.caller_number, dnis=dnis,
                            started_at=datetime.now(UTC))
        session = CallSession(info, AriChannel(self.client, channel.id), Journey(record, self.sink))
        self.sessions[channel.id] = session
        self._tasks[channel.id] = asyncio.create_task(self._run_call(session), name=f"call-{channel.id}")

    def _end_of_channel(self, session: CallSession, why: str) -> None:
        if session.handed_off:
            return  # we sent it away ourselves; the task finishes on its own
        if not session.hung_up:
            session.log("hangup", by="caller", reason=why)
        session.on_hangup()
        task = self._tasks.get(session.call_id)
        if task is not None and not task.done():
            task.cancel()

    async def _run_call(self, session: CallSession) -> None:
        journey = session.journey
        try:
            await self.handler(session)
            if not journey.ended:
                journey.end(outcome_when_flow_ended(journey.record))
        except asyncio.CancelledError:
            if session.hung_up:
                journey.end(outcome_when_caller_left(journey.record))
            else:  # shutdown: the call is not cut, it goes on in the dialplan
                await asyncio.shield(self._hand_to_fallback(session, "shutdown"))
        except ChannelGone:
            session.on_hangup()
            journey.end(outcome_when_caller_left(journey.record))
        except Exception as exc:  # noqa: BLE001 - one call's bug must not take the server down
            session.log("call_error", level=logging.ERROR, error=type(exc).__name__, detail=str(exc)[:200],
                        caller_gets="fallback")
            log.debug("call error", exc_info=True)
            await self._hand_to_fallback(session, "error")
        finally:
            if not journey.ended:
                journey.end("error")
            session.log("call_end", outcome=journey.record.outcome, duration_ms=journey.record.duration_ms,
                        path=">".join(journey.record.path))
            self.sessions.pop(session.call_id, None)
            self._tasks.pop(session.call_id, None)

    async def _hand_to_fallback(self, session: CallSession, reason: str) -> None:
        if session.hung_up or session.handed_off:
            return
        try:
            await session.transfer(self.fallback.context, self.fallback.extension, f"fallback:{reason}")
            session.journey.end("error" if reason == "error" else "transferred")
        except (ChannelGone, AriError) as exc:
            session.log("fallback_failed", level=logging.ERROR, error=type(exc).__name__)
            session.journey.end("error")

    async def _send_to_fallback(self, channel_id: str) -> None:
        try:
            await self.client.continue_in_dialplan(channel_id, self.fallback.context, self.fallback.extension)
        except AriError as exc:
            log_event(log, "fallback_failed", level=logging.ERROR, call=channel_id, error=str(exc))

    async def _resync(self) -> None:
        """Reconcile our calls with the channels Asterisk still has in our application."""
        try:
            app = await self.client.application()
        except AriError as exc:
            log_event(log, "resync_failed", level=logging.ERROR, error=str(exc))
            return
        live = set(app.get("channel_ids", []))
        log_event(log, "resync", live=len(live), ours=len(self.sessions))
        for call_id, session in list(self.sessions.items()):
            if call_id not in live:
                self._end_of_channel(session, "gone_after_reconnect")
                continue
            try:
                if not await session.resync():
                    self._end_of_channel(session, "gone_after_reconnect")
            except AriError as exc:
                session.log("resync_failed", level=logging.WARNING, error=str(exc))
        for channel_id in live - set(self.sessions):
            log_event(log, "call_to_fallback", level=logging.WARNING, call=channel_id, reason="state_lost")
            await self._send_to_fallback(channel_id)

    async def drain(self, grace: float) -> None:
        """Graceful stop: no new calls; let calls finish for `grace` s, then hand them to the dialplan."""
        self._draining = True
        tasks = list(self._tasks.values())
        log_event(log, "draining", calls=len(tasks), grace_s=grace)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=10)
        if self._background:
            await asyncio.wait(self._background, timeout=5)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
