"""One call in progress: the media and input primitives a flow is written with.

A flow reads like a script — `await call.play(prompt)`, `await call.get_digits(...)` — and runs
as one asyncio task (`lifecycle.run_call`). The transport's event router feeds this object the
call's events (digits, playback finished, hangup) synchronously; a hangup cancels the task, so
whatever the call awaits stops.

`CallState` says who owns the call at any moment: the one field the registry, the lifecycle and
the outcome read, instead of flags that could disagree.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from agi_app.config import DEFAULTS, Settings
from agi_app.directory.models import LANGUAGES
from agi_app.engine.channel import ChannelControl, ChannelFailed
from agi_app.engine.dtmf import DtmfBuffer
from agi_app.engine.journey import Journey
from agi_app.engine.survey import SurveyRequest
from agi_app.logs import log_event

log = logging.getLogger("hotline.call")


class CallState(Enum):
    """Where a call is, from our side: ringing → in flow → handed off, or caller gone at any time."""

    RINGING = "ringing"  # in our application, not answered yet
    IN_FLOW = "in_flow"  # answered: the flow owns it
    HANDED_OFF = "handed_off"  # we let it go: to a destination, the dialplan fallback, or our hang-up
    CALLER_GONE = "caller_gone"  # the caller hung up, or the channel vanished


@dataclass(frozen=True)
class Arrival:
    """What the network told us about the call when it arrived (the journey's record is what we
    made of it)."""

    call_id: str
    caller: str
    dnis: str
    survey: SurveyRequest | None = None  # back from an agent to rate them (`engine/survey.py`)


@dataclass(frozen=True)
class DigitInput:
    digits: str
    ended_by: Literal["max", "terminator", "timeout"]

    @property
    def timed_out(self) -> bool:
        return self.ended_by == "timeout" and not self.digits


@dataclass(frozen=True)
class Recording:
    """What the caller recorded: the name Asterisk stored it under (generated here, never input)
    and its length in whole seconds."""

    name: str
    duration_s: int


#: A recording's name starts with a label from the flow (a node id); anything else becomes "rec".
_LABEL = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: The channel variable the dialplan's own prompts take their language from (`hotline-language` in
#: dialplan/extensions.conf.j2: unset or unknown, the default language).
DIALPLAN_LANGUAGE = "HOTLINE_LANGUAGE"
#: The `#` that ended a recording may reach us just after RecordingFinished: digits are dropped
#: until the caller has paused this long, so it is never read as the answer to the next prompt.
RECORDING_SETTLE_S = 0.3


class CallSession:
    """State and primitives of one call; owned by exactly one task."""

    def __init__(self, arrival: Arrival, channel: ChannelControl, journey: Journey, *,
                 settings: Settings = DEFAULTS) -> None:
        self.arrival = arrival
        self.channel = channel
        self.journey = journey
        self.dtmf = DtmfBuffer(settings.dtmf_capacity)
        self.state = CallState.RINGING
        self._playbacks: dict[str, asyncio.Future[None]] = {}
        self._recordings: dict[str, asyncio.Future[int | None]] = {}  # name -> seconds, None if failed
        # The playback Asterisk may still be playing: set until it finished or we stopped it, so
        # a transfer after a cancelled play() can stop it first (Asterisk runs a channel's
        # commands in order: a `continue` waits until the current playback ends).
        self.active_playback: str | None = None
        # Likewise the recording Asterisk may still be making (a call given up mid-message): a
        # `continue` would wait behind it until the caller stops talking.
        self.active_recording: str | None = None
        self._ids = itertools.count(1)
        self.playback_check_s = settings.playback_check_s
        self.secure_quiet_gap_s = settings.secure_quiet_gap_s
        self.dtmf_discard_max_s = settings.dtmf_discard_max_s
        self.recording_grace_s = settings.recording_grace_s

    @property
    def call_id(self) -> str:
        return self.arrival.call_id

    @property
    def ours(self) -> bool:
        """Still in our application and ours to serve (neither handed off nor gone)."""
        return self.state in (CallState.RINGING, CallState.IN_FLOW)

    def log(self, event: str, *, level: int = logging.INFO, **fields: object) -> None:
        log_event(log, event, level=level, call=self.call_id, **fields)

    # --- events, fed by the event router (synchronous, never block) -------------------------
    def on_dtmf(self, digit: str) -> None:
        accepted = self.dtmf.push(digit)
        if not accepted:
            self.log("dtmf_dropped", level=logging.WARNING, buffered=len(self.dtmf), dropped=self.dtmf.dropped)

    def on_playback_finished(self, playback_id: str) -> None:
        future = self._playbacks.get(playback_id)
        if future is not None and not future.done():
            future.set_result(None)

    def on_recording_finished(self, name: str, duration_s: int | None) -> None:
        """A recording ended (`duration_s`), or failed (None)."""
        future = self._recordings.get(name)
        if future is not None and not future.done():
            future.set_result(duration_s)

    def on_hangup(self) -> None:
        """The caller hung up or the channel vanished: whatever the call awaits on it stops."""
        self.state = CallState.CALLER_GONE
        waiting: list[asyncio.Future[None] | asyncio.Future[int | None]] = [*self._playbacks.values(),
                                                                          *self._recordings.values()]
        for future in waiting:
            if not future.done():
                future.cancel()

    # --- primitives ----------------------------------------------------------------------
    async def answer(self) -> None:
        await self.channel.answer()
        if self.state is CallState.RINGING:
            self.state = CallState.IN_FLOW

    async def play(self, media: Sequence[str], *, interruptible: bool = True) -> bool:
        """Play `media` in order; returns True if a digit interrupted it (the digit stays buffered).

        With type-ahead, digits already buffered skip the prompt entirely.
        """
        if not media:
            return False
        if interruptible and len(self.dtmf):
            return True
        playback_id = f"{self.call_id}-pb{next(self._ids)}"
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._playbacks[playback_id] = finished  # before the request: events may beat the reply
        self.active_playback = playback_id
        try:
            await self.channel.start_playback(media, playback_id)
            if not interruptible:
                await self._until_finished(playback_id, finished)
                self.active_playback = None
                return False
            digit = asyncio.ensure_future(self.dtmf.wait_any())
            try:
                await self._until_finished(playback_id, finished, digit)
            finally:
                digit.cancel()
            if finished.done():
                finished.result()  # raise if cancelled by a hangup
                self.active_playback = None
                return False
            await self.stop_playback()
            return True
        finally:
            self._playbacks.pop(playback_id, None)

    async def _until_finished(self, playback_id: str, finished: asyncio.Future[None],
                              digit: asyncio.Future[None] | None = None) -> None:
        """Wait for the playback's end (or a digit). Every `playback_check_s` without news, ask
        Asterisk whether it is still playing: a lost event must not leave a caller in silence."""
        waiting = {finished} if digit is None else {finished, digit}
        while True:
            done, _ = await asyncio.wait(waiting, timeout=self.playback_check_s, return_when=asyncio.FIRST_COMPLETED)
            if done:
                return
            if not await self.channel.playback_active(playback_id):
                self.log("playback_end_unseen", level=logging.WARNING, playback=playback_id)
                finished.set_result(None)
                return

    async def get_digits(self, *, prompt: Sequence[str] = (), max_digits: int = 1,
                         first_timeout: float = 5.0, inter_timeout: float = 3.0,
                         terminator: str = "") -> DigitInput:
        """Collect up to `max_digits`; the first-digit timer starts after the prompt ends."""
        await self.play(prompt)
        digits = ""
        timeout = first_timeout
        while len(digits) < max_digits:
            digit = await self.dtmf.pop(timeout)
            if digit is None:
                return DigitInput(digits, "timeout")
            if terminator and digit in terminator:
                return DigitInput(digits, "terminator")
            digits += digit
            timeout = inter_timeout
        return DigitInput(digits, "max")

    async def discard_after_secure_input(self) -> None:
        """Drop what the caller typed beyond secure input, until they pause for `secure_quiet_gap_s`:
        digits typed past a PIN are more PIN, never the next prompt's answer. Counted, not shown.
        Keys that never pause are dropped for `dtmf_discard_max_s` only: then the call goes on."""
        discarded, paused = await self.dtmf.discard_until_quiet(self.secure_quiet_gap_s,
                                                                at_most=self.dtmf_discard_max_s)
        if discarded:
            self.log("dtmf_discarded", discarded=discarded, after="secure_input",
                     still_typing=None if paused else "yes")

    async def record(self, label: str, *, max_seconds: int, max_silence_seconds: int) -> Recording | None:
        """Record the caller after a beep until `#`, `max_silence_seconds` of silence or `max_seconds`;
        None if Asterisk could not record (the caller is still there).

        The name is `<label>-<random hex>`: no caller input ever names a file. Digits typed while
        speaking, and the `#` that ended it, are dropped. A caller who hangs up cancels the wait as
        any hangup does; what Asterisk recorded so far stays in its spool (logged with its name).
        Without news by `max_seconds` + `recording_grace_s` we stop it ourselves and keep it.
        """
        name = f"{label if _LABEL.fullmatch(label) else 'rec'}-{uuid.uuid4().hex}"
        finished: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._recordings[name] = finished  # before the request: events may beat the reply
        try:
            await self.stop_playback()
            self.dtmf.clear()  # keys pressed before the beep do not end the recording
            await self.channel.record(name, max_seconds=max_seconds, max_silence_seconds=max_silence_seconds)
            self.active_recording = name
            self.log("recording_started", recording=name)
            done, _ = await asyncio.wait({finished}, timeout=max_seconds + self.recording_grace_s)
            if not done:
                self.log("recording_end_unseen", level=logging.WARNING, recording=name)
                await self.channel.stop_recording(name)
                done, _ = await asyncio.wait({finished}, timeout=self.recording_grace_s)
                if not done:
                    raise ChannelFailed(f"recording {name} did not end after it was stopped")
            duration = finished.result()
            self.active_recording = None
        except asyncio.CancelledError:
            if self.state is CallState.CALLER_GONE:
                self.log("recording_abandoned", recording=name)
            raise
        finally:
            self._recordings.pop(name, None)
        discarded, _ = await self.dtmf.discard_until_quiet(RECORDING_SETTLE_S, at_most=self.dtmf_discard_max_s)
        if duration is None:
            self.log("recording_failed", level=logging.WARNING, recording=name)
            return None
        self.log("recording_finished", recording=name, seconds=duration, discarded=discarded or None)
        return Recording(name, duration)

    async def stop_playback(self) -> None:
        """Stop what may still be playing (no error if it already ended)."""
        if self.active_playback is not None:
            await self.channel.stop_playback(self.active_playback)
            self.active_playback = None

    async def stop_recording(self) -> None:
        """Stop a recording the call was given up during (it is kept; no error if it ended)."""
        if self.active_recording is not None:
            await self.channel.stop_recording(self.active_recording)
            self.active_recording = None

    async def transfer(self, context: str, extension: str, target: str, *, language: str | None) -> None:
        """Hand the call to the dialplan (queue, fallback); the channel leaves our app. What the
        dialplan says itself (no agent, goodbye, the survey it sends the caller back to) is in
        `language`, the one the caller was served in; None leaves the dialplan's default."""
        await self.stop_playback()
        await self.stop_recording()
        variables = self._dialplan_variables(language)
        await self._let_go(self.channel.continue_in_dialplan(context, extension, 1, variables=variables))
        self.journey.transferred(target)
        self.log("transferred", context=context, extension=extension, target=target)

    def _dialplan_variables(self, language: str | None) -> dict[str, str]:
        """The variables a transfer sets: only a known language code ever reaches the channel."""
        if language is None:
            return {}
        if language not in LANGUAGES:
            self.log("dialplan_language_unknown", level=logging.WARNING, dialplan_gets="default")
            return {}
        return {DIALPLAN_LANGUAGE: language}

    async def hangup(self) -> None:
        """Hang up. As with `transfer`, the call stays handed off only once the request succeeded:
        a hang-up that failed leaves the caller to the dialplan fallback, not to silence."""
        await self._let_go(self.channel.hangup())

    async def _let_go(self, request: Awaitable[None]) -> None:
        """Run the request that makes the channel leave us. Handed off before it is sent (the
        StasisEnd it causes may beat the reply); back as it was if it failed or was cancelled, so
        the lifecycle's fallback still tries."""
        before, self.state = self.state, CallState.HANDED_OFF
        try:
            await request
        except BaseException:
            self.state = before
            raise

    async def resync(self) -> bool:
        """After an event gap: is the channel still here, and did a playback end unseen?"""
        if not await self.channel.exists():
            return False
        for playback_id, future in list(self._playbacks.items()):
            if not future.done() and not await self.channel.playback_active(playback_id):
                future.set_result(None)
        return True
