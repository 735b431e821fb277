"""Routes ARI events to calls: one task per call, hangup cancels it, reconnect resyncs.

StasisStart creates a `CallSession` and its task; later events for that channel go to the
session; a hangup or StasisEnd cancels the task (structured cancellation: whatever the call is
awaiting — a prompt, a digit, a database lookup — stops at once). After the event WebSocket
reconnects, Asterisk does not resend StasisStart, so the dispatcher asks which channels are
still in the application: known ones resync, unknown ones (state lost) go to the dialplan
fallback rather than hearing dead air.

The fallback is the caller's last way out, so it is retried with backoff within a budget; a
channel still not handed over is kept and tried again at the next resync. A channel we send to
the fallback without a session belongs to it: a StasisStart of its arriving late (still queued
when the resync listed the channel) starts no session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from agi_app.ari.channel import AriChannel
from agi_app.ari.client import ApplicationTakenOver, AriClient, AriError
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
FallbackResult = Literal["done", "gone", "failed"]


class EventsLost(Exception):
    """The application's events no longer reach this server, so its calls are deaf: another
    server took the application over (`replaced`), or the event reader failed."""

    def __init__(self, message: str, *, replaced: bool = False) -> None:
        super().__init__(message)
        self.replaced = replaced


@dataclass(frozen=True)
class Fallback:
    """Where calls go when we cannot serve them (app shutting down, state lost, internal error),
    and how hard we try: attempts with capped exponential backoff, none starting after `budget_s`."""

    context: str = "hotline-fallback"
    extension: str = "s"
    budget_s: float = 10.0
    first_backoff_s: float = 0.1
    max_backoff_s: float = 2.0


class Dispatcher:
    def __init__(self, client: AriClient, handler: CallHandler, sink: JourneySink, *,
                 fallback: Fallback = Fallback(), max_calls: int = 500, resync_settle_s: float = 0.5) -> None:
        self.client = client
        self.handler = handler
        self.sink = sink
        self.fallback = fallback
        self.max_calls = max_calls
        # Asterisk lists a channel in the application as soon as it enters it, maybe before its
        # StasisStart reaches us: how long a resync lets such events arrive before it decides.
        self.resync_settle_s = resync_settle_s
        self.sessions: dict[str, CallSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._draining = False
        self._drain_reason = "shutdown"
        self._background: set[asyncio.Task[None]] = set()
        # Channels we hand to the fallback without a session (new calls while draining or at
        # capacity, unknown channels at resync): "sending" while its requests are under way, "sent"
        # once Asterisk took it, "owed" when every attempt failed (the next resync tries again).
        # Forgotten when the channel leaves the application (StasisEnd, or absent at a resync).
        self._unserved: dict[str, Literal["sending", "sent", "owed"]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Consume events until `stop` is set; `EventsLost` when they stop reaching us for good."""
        stream = self.client.events()
        try:
            while (event := await stream.next(stop)) is not None:
                self.handle(event)
        except ApplicationTakenOver as exc:
            raise EventsLost(f"another hotline serve took over ARI application {exc.app!r}", replaced=True) from exc
        except Exception as exc:
            raise EventsLost(f"the ARI event reader failed: {type(exc).__name__}: {exc}") from exc
        finally:
            await stream.close()

    def handle(self, event: AriEvent) -> None:
        """Route one event (synchronous: routing never waits on I/O)."""
        if isinstance(event, StasisStart):
            self._start_call(event)
        elif isinstance(event, StreamConnected):
            self._spawn(self._resync())
        elif isinstance(event, ApplicationReplaced):
            self._draining = True  # its events, new calls included, now go to the other server
            log_event(log, "ari_application_replaced", level=logging.ERROR, app=self.client.app,
                      calls=len(self._tasks))
        else:
            channel_id = event.channel_id or ""
            session = self.sessions.get(channel_id)
            if session is None:
                if isinstance(event, StasisEnd | ChannelDestroyed):
                    self._unserved.pop(channel_id, None)  # it left the application: nothing owed
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
        if channel.id in self._unserved:  # a late StasisStart: the resync already sent it away
            log_event(log, "stasis_start_ignored", level=logging.WARNING, call=channel.id,
                      reason="sent_to_fallback")
            return
        dnis = event.args[0] if event.args else channel.exten
        log_event(log, "stasis_start", call=channel.id, caller=channel.caller_number, dnis=dnis,
                  channel=channel.name)
        if self._draining or len(self._tasks) >= self.max_calls:
            self._send_to_fallback(channel.id, "draining" if self._draining else "at_capacity")
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
        fallback: str | None = None  # why the call goes to the dialplan fallback, if it does
        try:
            try:
                await self.handler(session)
                if not journey.ended:
                    journey.end(outcome_when_flow_ended(journey.record))
            except asyncio.CancelledError:  # only the dispatcher cancels a call task: handled here
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                if session.hung_up:
                    journey.end(outcome_when_caller_left(journey.record))
                else:  # drain, or our events lost: the call is not cut, it goes on in the dialplan
                    fallback = self._drain_reason
            except ChannelGone:
                session.on_hangup()
                journey.end(outcome_when_caller_left(journey.record))
            except Exception as exc:  # noqa: BLE001 - one call's bug must not take the server down
                session.log("call_error", level=logging.ERROR, error=type(exc).__name__, detail=str(exc)[:200],
                            caller_gets="fallback")
                log.debug("call error", exc_info=True)
                fallback = "error"
            if fallback is not None:  # shielded: a drain's cancel must not cut the hand-over short
                await asyncio.shield(self._hand_to_fallback(session, fallback))
        finally:
            if not journey.ended:
                journey.end("error")
            session.log("call_end", outcome=journey.record.outcome, duration_ms=journey.record.duration_ms,
                        path=">".join(journey.record.path))
            self.sessions.pop(session.call_id, None)
            self._tasks.pop(session.call_id, None)

    async def _hand_to_fallback(self, session: CallSession, reason: str) -> None:
        """A call in progress to the dialplan fallback (its session's own transfer, retried)."""
        if session.hung_up or session.handed_off:
            return
        target = f"fallback:{reason}"
        result = await self._retry_fallback(
            session.call_id, lambda: session.transfer(self.fallback.context, self.fallback.extension, target))
        if result == "done":
            session.journey.end("error" if reason == "error" else "transferred")
            return
        session.journey.end("error")
        if result == "failed":
            self._unserved[session.call_id] = "owed"

    def _send_to_fallback(self, channel_id: str, reason: str) -> None:
        """A channel we hold no session for to the dialplan fallback. Marked before any await, so
        that a StasisStart handled meanwhile does not give it a session as well."""
        self._unserved[channel_id] = "sending"
        while len(self._unserved) > 4 * self.max_calls:  # bounded, should its StasisEnd never come
            del self._unserved[next(iter(self._unserved))]
        log_event(log, "call_to_fallback", level=logging.WARNING, call=channel_id, reason=reason)
        self._spawn(self._deliver_to_fallback(channel_id))

    async def _deliver_to_fallback(self, channel_id: str) -> None:
        channel = AriChannel(self.client, channel_id)
        result = await self._retry_fallback(
            channel_id, lambda: channel.continue_in_dialplan(self.fallback.context, self.fallback.extension))
        if result == "failed":
            self._unserved[channel_id] = "owed"
        elif result == "gone":
            self._unserved.pop(channel_id, None)
        elif channel_id in self._unserved:  # not when its StasisEnd beat the reply
            self._unserved[channel_id] = "sent"

    async def _retry_fallback(self, call_id: str, attempt: Callable[[], Awaitable[None]]) -> FallbackResult:
        """Run `attempt` until it succeeds ("done"), the channel is gone ("gone": the caller left,
        nobody to hand over) or the budget is spent ("failed"); capped exponential backoff between."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.fallback.budget_s
        pause = self.fallback.first_backoff_s
        attempts = 0
        while True:
            attempts += 1
            try:
                await attempt()
                return "done"
            except ChannelGone:
                return "gone"
            except AriError as exc:
                error = type(exc).__name__
            if loop.time() + pause > deadline:
                log_event(log, "fallback_failed", level=logging.ERROR, call=call_id, attempts=attempts,
                          error=error, retry="next_resync")
                return "failed"
            log_event(log, "fallback_retry", level=logging.WARNING, call=call_id, attempt=attempts,
                      error=error, retry_in_s=pause)
            await asyncio.sleep(pause)
            pause = min(2 * pause, self.fallback.max_backoff_s)

    async def _resync(self) -> None:
        """Reconcile our calls with the channels Asterisk still has in our application."""
        try:
            app = await self.client.application()
        except AriError as exc:
            log_event(log, "resync_failed", level=logging.ERROR, error=str(exc))
            return
        live = set(app.get("channel_ids", []))
        for gone in [c for c in self._unserved if c not in live]:
            del self._unserved[gone]
        log_event(log, "resync", live=len(live), ours=len(self.sessions), owed=len(self._unserved) or None)
        for call_id, session in list(self.sessions.items()):
            if call_id not in live:
                self._end_of_channel(session, "gone_after_reconnect")
                continue
            try:
                if not await session.resync():
                    self._end_of_channel(session, "gone_after_reconnect")
            except AriError as exc:
                session.log("resync_failed", level=logging.WARNING, error=str(exc))
        unknown = [c for c in sorted(live) if self._unclaimed(c)]
        if not unknown:
            return
        await asyncio.sleep(self.resync_settle_s)  # a StasisStart still on its way makes its channel ours
        for channel_id in unknown:
            if self._unclaimed(channel_id):  # checked again; marked from here on, a late one starts nothing
                self._send_to_fallback(channel_id, "retry" if channel_id in self._unserved else "state_lost")

    def _unclaimed(self, channel_id: str) -> bool:
        """In our application, yet neither a call of ours nor on its way to the fallback."""
        return channel_id not in self.sessions and self._unserved.get(channel_id) not in ("sending", "sent")

    async def drain(self, grace: float, *, reason: str = "shutdown") -> None:
        """Graceful stop: no new calls; let calls finish for `grace` s, then hand them to the
        dialplan (`reason` says why, in their journey and log). Waits for those hand-overs."""
        self._draining = True
        self._drain_reason = reason
        tasks = list(self._tasks.values())
        log_event(log, "draining", calls=len(tasks), grace_s=grace, reason=reason)
        # the last fallback attempt may start just before the budget ends, and take a request's budget
        handover_s = self.fallback.budget_s + self.client.request_timeout + 1
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace) if grace > 0 else (set(), set(tasks))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=handover_s)
        if self._background:
            _, stuck = await asyncio.wait(self._background, timeout=handover_s)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
