"""The calls this server holds: one task per call (`lifecycle.run_call`), a limit on how many,
and the channels owed the dialplan fallback without a call of ours; drained on shutdown.

It knows no transport: the event router (`ari/router.py`) tells it that a call arrived, that a
channel left, or which channels the telephony side still has after a gap, and gives it a
`ChannelControl` for each. A caller leaving cancels their call's task, so whatever it awaits
stops at once.

A channel we hand to the fallback without a session (new calls while draining or at capacity,
unknown channels at a resync) belongs to the fallback: an arrival of its that comes late starts
no session. One the fallback did not take is owed it, and tried again at the next resync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Collection
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

from agi_app.config import DEFAULTS, Settings
from agi_app.engine.channel import ChannelControl
from agi_app.engine.journey import Journey, JourneyRecord, JourneySink
from agi_app.engine.lifecycle import CallHandler, Ending, Fallback, HandOver, hand_over, outcome, run_call
from agi_app.engine.session import Arrival, CallSession, CallState
from agi_app.engine.survey import SURVEY_END, AfterAgentSink
from agi_app.logs import log_event

log = logging.getLogger("hotline.calls")

#: A channel held for the fallback: "sending" while its requests are under way, "sent" once the
#: dialplan took it, "owed" when every attempt failed (the next resync tries again).
Unserved = Literal["sending", "sent", "owed"]
#: How a hand-over to the fallback ends a journey: as a call given up and taken by the dialplan does.
_ENDINGS: dict[HandOver, Ending] = {"done": "handed_over", "gone": "caller_left", "failed": "failed"}


class CallRegistry:
    def __init__(self, handler: CallHandler, sink: JourneySink, settings: Settings = DEFAULTS) -> None:
        self.handler = handler
        self.sink = sink
        self.settings = settings
        self.fallback = Fallback.from_settings(settings)
        self.survey_end = replace(self.fallback, context=SURVEY_END[0], extension=SURVEY_END[1])
        self.max_calls = settings.max_calls
        self.sessions: dict[str, CallSession] = {}
        # Channels handed to the fallback without a session; forgotten when the channel leaves the
        # application (its end, or absent at a resync).
        self.unserved: dict[str, Unserved] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._accepting = True
        self._given_up_for = "shutdown"
        self._background: set[asyncio.Task[None]] = set()

    # --- what the transport tells us (synchronous: never waits on I/O) ----------------------
    def arrive(self, arrival: Arrival, channel: ChannelControl) -> None:
        """A new call: its session and task — or, while draining or at capacity, the fallback. A
        survey after an agent call (`arrival.survey`) records only its result, and its fallback is
        the dialplan's goodbye (`SURVEY_END`), not a queue."""
        fallback = self.fallback if arrival.survey is None else self.survey_end
        record = JourneyRecord(call_id=arrival.call_id, caller=arrival.caller, dnis=arrival.dnis,
                               started_at=datetime.now(UTC))
        if not self._accepting or len(self._tasks) >= self.max_calls:
            # A journey all the same (not for a survey leg: its call has one): the KPIs count every
            # caller, and the ones we could not serve most of all.
            journey = Journey(record, self.sink) if arrival.survey is None else None
            self.send_away(channel, "at_capacity" if self._accepting else "draining", fallback, journey=journey)
            return
        sink = self.sink if arrival.survey is None else AfterAgentSink(self.sink, arrival.survey)
        session = CallSession(arrival, channel, Journey(record, sink), settings=self.settings)
        self.sessions[arrival.call_id] = session
        self._tasks[arrival.call_id] = asyncio.create_task(self._run(session, fallback),
                                                           name=f"call-{arrival.call_id}")

    def end_of_channel(self, session: CallSession, why: str) -> None:
        """The caller hung up or the channel vanished: the call's task is cancelled."""
        if session.state is CallState.HANDED_OFF:
            return  # we sent it away ourselves; the task finishes on its own
        if session.state is not CallState.CALLER_GONE:
            session.log("hangup", by="caller", reason=why)
        session.on_hangup()
        task = self._tasks.get(session.call_id)
        if task is not None and not task.done():
            _cancel_once_started(task)

    def forget(self, channel_id: str) -> None:
        """A channel without a session left the application: nothing is owed to it any more."""
        self.unserved.pop(channel_id, None)

    def forget_absent(self, live: Collection[str]) -> None:
        for gone in [c for c in self.unserved if c not in live]:
            del self.unserved[gone]

    def held_for_fallback(self, channel_id: str) -> bool:
        return channel_id in self.unserved

    def unclaimed(self, channel_id: str) -> bool:
        """Neither a call of ours nor on its way to the fallback."""
        return channel_id not in self.sessions and self.unserved.get(channel_id) not in ("sending", "sent")

    def stop_accepting(self) -> None:
        """New calls go to the fallback from now on."""
        self._accepting = False

    # --- the fallback for channels without a session ----------------------------------------
    def send_away(self, channel: ChannelControl, reason: str, fallback: Fallback | None = None, *,
                  journey: Journey | None = None) -> None:
        """A channel we hold no session for to the dialplan fallback (or `fallback`); `journey`, if
        given, is closed with how that went. Marked before any await, so that an arrival handled
        meanwhile does not give it a session as well."""
        channel_id = channel.channel_id
        self.unserved[channel_id] = "sending"
        while len(self.unserved) > 4 * self.max_calls:  # bounded, should its end never be seen
            del self.unserved[next(iter(self.unserved))]
        log_event(log, "call_to_fallback", level=logging.WARNING, call=channel_id, reason=reason)
        self.spawn(self._deliver(channel, fallback or self.fallback, reason, journey))

    async def _deliver(self, channel: ChannelControl, fallback: Fallback, reason: str, journey: Journey | None) -> None:
        channel_id = channel.channel_id
        result = await hand_over(channel_id, lambda: channel.continue_in_dialplan(fallback.context, fallback.extension),
                                 fallback)
        if journey is not None:
            if result == "done":
                journey.transferred(f"fallback:{reason}")
            journey.end(outcome(_ENDINGS[result], journey.record))
            log_event(log, "call_end", call=channel_id, outcome=journey.record.outcome,
                      duration_ms=journey.record.duration_ms, path=f"fallback:{reason}")
        if result == "failed":
            self.unserved[channel_id] = "owed"
        elif result == "gone":
            self.unserved.pop(channel_id, None)
        elif channel_id in self.unserved:  # not when its end beat the reply
            self.unserved[channel_id] = "sent"

    # --- tasks ------------------------------------------------------------------------------
    async def _run(self, session: CallSession, fallback: Fallback) -> None:
        try:
            await run_call(session, self.handler, fallback, why_given_up=lambda: self._given_up_for)
        finally:
            self.sessions.pop(session.call_id, None)
            self._tasks.pop(session.call_id, None)
            if session.ours:  # the fallback never took it: still in the application, owed
                self.unserved[session.call_id] = "owed"

    def spawn(self, coro: Awaitable[None]) -> None:
        """A background task of the call machinery (a hand-over, a resync), awaited by `drain`."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self, grace: float, *, reason: str = "shutdown") -> None:
        """Graceful stop: no new calls; let calls finish for `grace` s, then hand them to the
        dialplan (`reason` says why, in their journey and log). Waits for those hand-overs."""
        self._accepting = False
        self._given_up_for = reason
        tasks = list(self._tasks.values())
        log_event(log, "draining", calls=len(tasks), grace_s=grace, reason=reason)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace) if grace > 0 else (set(), set(tasks))
            for task in pending:
                _cancel_once_started(task)
            if pending:
                await asyncio.wait(pending, timeout=self.fallback.handover_s)
        if self._background:
            _, stuck = await asyncio.wait(self._background, timeout=self.fallback.handover_s)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)


def _cancel_once_started(task: asyncio.Task[None]) -> None:
    """Cancel a call's task at the loop's next step. A task cancelled before its first step never
    runs at all — no `finally`: its journey never ends, its session and its slot are never freed —
    and a hang-up handled in the same step as the StasisStart did just that. The first step was
    scheduled when the task was created, so it runs before this cancellation."""
    asyncio.get_running_loop().call_soon(task.cancel)
