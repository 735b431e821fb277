"""Routes the application's ARI events into the engine's call registry, and keeps the two in step
after the event WebSocket reconnects.

StasisStart is a call arriving (with an `AriChannel`, the engine's channel protocol over ARI);
later events for its channel go to its session — digits, playback finished — and a hangup or
StasisEnd ends it. Asterisk does not resend StasisStart after a reconnect, so the router asks which
channels are still in the application: known calls resync (a playback that ended unseen is
detected), unknown ones (state lost) go to the dialplan fallback rather than hearing dead air.
Asterisk lists a channel as soon as it enters the application, perhaps before its StasisStart
reaches us: a resync gives such events `resync_settle_s` to arrive before it decides.

Callbacks' legs are not calls: their channel ids name a callback (`centre.callbacks.Leg`) and
their StasisStart's first argument is `callback` or `callback-customer` (a call's is the dialled
number, digits), so their events, and each reconnection, go to the callback dispatcher instead.

Campaign calls (`serve/campaigns.py`) likewise: channel ids naming an attempt
(`centre.campaigns.AttemptLeg`), first argument `campaign`; their events, and each reconnection,
go to the campaign dialler.

A caller back from an agent re-enters with first argument `survey` (`engine/survey.py`): a call
of the registry too, whose arguments are checked here before it starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from agi_app.ari.channel import AriChannel
from agi_app.ari.client import ApplicationTakenOver, AriClient, AriError
from agi_app.ari.events import (
    ApplicationReplaced,
    AriEvent,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    RecordingFailed,
    RecordingFinished,
    StasisEnd,
    StasisStart,
    StreamConnected,
)
from agi_app.centre.callbacks import CALLBACK_ARGS, Leg
from agi_app.centre.campaigns import CAMPAIGN_ARG, AttemptLeg
from agi_app.engine.channel import ChannelFailed, ChannelGone
from agi_app.engine.registry import CallRegistry
from agi_app.engine.session import Arrival
from agi_app.engine.survey import SURVEY_ARG, InvalidSurveyRequest, SurveyRequest
from agi_app.logs import log_event

log = logging.getLogger("hotline.ari.router")


class EventsLost(Exception):
    """The application's events no longer reach this server, so its calls are deaf: another
    server took the application over (`replaced`), or the event reader failed."""

    def __init__(self, message: str, *, replaced: bool = False) -> None:
        super().__init__(message)
        self.replaced = replaced


class PromptTimer(Protocol):
    """Told when a call arrives, a caller presses a key and a channel leaves (the server's metrics:
    the time callers wait for the next prompt)."""

    def arrived(self, channel_id: str) -> None: ...
    def key(self, channel_id: str) -> None: ...
    def left(self, channel_id: str) -> None: ...


class EventRouter:
    def __init__(self, client: AriClient, calls: CallRegistry, *, resync_settle_s: float,
                 callbacks: Callable[[AriEvent], None] | None = None,
                 campaigns: Callable[[AriEvent], None] | None = None,
                 prompts: PromptTimer | None = None) -> None:
        self.client = client
        self.calls = calls
        self.resync_settle_s = resync_settle_s
        self.callbacks = callbacks
        self.campaigns = campaigns
        self.prompts = prompts

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
        if self._for_campaigns(event):
            if self.campaigns is not None:
                self.campaigns(event)
            elif isinstance(event, StasisStart):  # no dialler here: nobody would serve it
                self.calls.spawn(self._hang_up(event.channel.id))
            if not isinstance(event, StreamConnected):
                return
        if self._for_callbacks(event):
            if self.callbacks is not None:
                self.callbacks(event)
            elif isinstance(event, StasisStart):  # no dispatcher here: nobody would serve it
                self.calls.spawn(self._hang_up(event.channel.id))
            if not isinstance(event, StreamConnected):
                return
        if isinstance(event, StasisStart):
            if self.prompts is not None:
                self.prompts.arrived(event.channel.id)
            self._start_call(event)
        elif isinstance(event, StreamConnected):
            self.calls.spawn(self._resync())
        elif isinstance(event, ApplicationReplaced):
            self.calls.stop_accepting()  # its events, new calls included, now go to the other server
            log_event(log, "ari_application_replaced", level=logging.ERROR, app=self.client.app,
                      calls=len(self.calls.sessions))
        else:
            channel_id = event.channel_id or ""
            session = self.calls.sessions.get(channel_id)
            if session is None:
                if isinstance(event, StasisEnd | ChannelDestroyed):
                    self.calls.forget(channel_id)  # it left the application: nothing owed
                    if self.prompts is not None:
                        self.prompts.left(channel_id)
                return
            if isinstance(event, ChannelDtmfReceived):
                session.log("dtmf")  # never the digit: it may be a PIN typed ahead of its prompt
                if self.prompts is not None:
                    self.prompts.key(channel_id)
                session.on_dtmf(event.digit)
            elif isinstance(event, PlaybackFinished):
                session.on_playback_finished(event.playback.id)
            elif isinstance(event, RecordingFinished | RecordingFailed):
                failed = isinstance(event, RecordingFailed)
                session.on_recording_finished(event.recording.name, None if failed else event.recording.duration)
            elif isinstance(event, ChannelHangupRequest | StasisEnd | ChannelDestroyed):
                if self.prompts is not None:
                    self.prompts.left(channel_id)
                self.calls.end_of_channel(session, event.type)

    @staticmethod
    def _for_callbacks(event: AriEvent) -> bool:
        if isinstance(event, StreamConnected):
            return True
        if isinstance(event, StasisStart) and event.args and event.args[0] in CALLBACK_ARGS:
            return True
        return Leg.parse(event.channel_id or "") is not None

    @staticmethod
    def _for_campaigns(event: AriEvent) -> bool:
        if isinstance(event, StreamConnected):
            return True
        if isinstance(event, StasisStart) and event.args and event.args[0] == CAMPAIGN_ARG:
            return True
        return AttemptLeg.parse(event.channel_id or "") is not None

    async def _hang_up(self, channel_id: str) -> None:
        try:
            await self.client.hangup(channel_id)
        except AriError as exc:
            log_event(log, "hangup_failed", level=logging.WARNING, channel=channel_id, error=str(exc)[:200])

    def _start_call(self, event: StasisStart) -> None:
        channel = event.channel
        if channel.id in self.calls.sessions:
            return
        if self.calls.held_for_fallback(channel.id):  # a late StasisStart: a resync already sent it away
            log_event(log, "stasis_start_ignored", level=logging.WARNING, call=channel.id,
                      reason="sent_to_fallback")
            return
        if event.args and event.args[0] == SURVEY_ARG:
            self._start_survey(event)
            return
        dnis = event.args[0] if event.args else channel.exten
        log_event(log, "stasis_start", call=channel.id, caller=channel.caller_number, dnis=dnis,
                  channel=channel.name)
        self.calls.arrive(Arrival(call_id=channel.id, caller=channel.caller_number, dnis=dnis),
                          AriChannel(self.client, channel.id))

    def _start_survey(self, event: StasisStart) -> None:
        """A caller back from an agent (hotline-agent-done): the survey, if its arguments are the
        dialplan's; otherwise the dialplan's goodbye."""
        channel = event.channel
        try:
            request = SurveyRequest.parse(event.args)
        except InvalidSurveyRequest as exc:
            log_event(log, "survey_refused", level=logging.WARNING, call=channel.id, error=str(exc))
            self.calls.send_away(AriChannel(self.client, channel.id), "survey_refused", self.calls.survey_end)
            return
        log_event(log, "stasis_start", call=channel.id, caller=channel.caller_number, dnis=SURVEY_ARG,
                  channel=channel.name)
        self.calls.arrive(Arrival(call_id=channel.id, caller=channel.caller_number, dnis=SURVEY_ARG,
                                  survey=request), AriChannel(self.client, channel.id))

    async def _resync(self) -> None:
        """Reconcile our calls with the channels Asterisk still has in our application."""
        try:
            app = await self.client.application()
        except AriError as exc:
            log_event(log, "resync_failed", level=logging.ERROR, error=str(exc))
            return
        live = {c for c in app.get("channel_ids", [])  # callback legs and campaign calls are not calls
                if Leg.parse(c) is None and AttemptLeg.parse(c) is None}
        self.calls.forget_absent(live)
        log_event(log, "resync", live=len(live), ours=len(self.calls.sessions),
                  owed=len(self.calls.unserved) or None)
        for call_id, session in list(self.calls.sessions.items()):
            if call_id not in live:
                self.calls.end_of_channel(session, "gone_after_reconnect")
                continue
            try:
                if not await session.resync():
                    self.calls.end_of_channel(session, "gone_after_reconnect")
            except (ChannelGone, ChannelFailed) as exc:
                session.log("resync_failed", level=logging.WARNING, error=str(exc))
        unknown = [c for c in sorted(live) if self.calls.unclaimed(c)]
        if not unknown:
            return
        await asyncio.sleep(self.resync_settle_s)  # a StasisStart still on its way makes its channel ours
        for channel_id in unknown:
            if self.calls.unclaimed(channel_id):  # checked again; marked from here on, a late one starts nothing
                reason = "retry" if self.calls.held_for_fallback(channel_id) else "state_lost"
                self.calls.send_away(AriChannel(self.client, channel_id), reason)
