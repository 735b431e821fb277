"""Calls without Asterisk: the real engine (`run_call`, HotlineFlow, FlowRunner, CallSession) on a
simulated channel, for `hotline menus preview` (what a caller hears up to the first menu) and
`hotline simulate` (walk the flow by typing digits). Same code as live calls — the same lifecycle
and outcome, the same fallback when a flow fails — so what you see is what callers get.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from agi_app.config import DEFAULTS
from agi_app.engine.call import HotlineFlow
from agi_app.engine.channel import ChannelGone
from agi_app.engine.journey import Journey, JourneyRecord, MemorySink
from agi_app.engine.lifecycle import Fallback, run_call
from agi_app.engine.session import Arrival, CallSession
from agi_app.flows.model import Node

_ids = itertools.count(1)
#: Where a simulated call goes when its flow fails (recorded on the channel, never dialled),
#: unless the caller names the settings' own.
FALLBACK = Fallback.from_settings(DEFAULTS)


class SimulatedChannel:
    """A ChannelControl whose playbacks finish at once; it remembers what was played and where
    the call went."""

    def __init__(self, channel_id: str, on_play: Callable[[Sequence[str]], None] | None = None) -> None:
        self.channel_id = channel_id
        self.session: CallSession | None = None
        self.played: list[str] = []
        self.continued_to: tuple[str, str, int] | None = None
        self.variables: dict[str, str] = {}  # set for the dialplan by a transfer
        self.hung_up = False
        self.recorded: list[str] = []
        self._on_play = on_play

    async def answer(self) -> None:
        return None

    async def start_playback(self, media: Sequence[str], playback_id: str) -> None:
        self.played.extend(media)
        if self._on_play:
            self._on_play(media)
        assert self.session is not None
        asyncio.get_running_loop().call_soon(self.session.on_playback_finished, playback_id)

    async def stop_playback(self, playback_id: str) -> None:
        return None

    async def playback_active(self, playback_id: str) -> bool:
        return False

    async def exists(self) -> bool:
        return not self.hung_up

    async def record(self, name: str, *, max_seconds: int, max_silence_seconds: int) -> None:
        """A rehearsal records nothing: the recording ends at once, one second long."""
        assert self.session is not None
        self.recorded.append(name)
        asyncio.get_running_loop().call_soon(self.session.on_recording_finished, name, 1)

    async def stop_recording(self, name: str) -> None:
        return None

    async def continue_in_dialplan(self, context: str, extension: str, priority: int = 1, *,
                                   variables: Mapping[str, str] | None = None) -> None:
        self.continued_to = (context, extension, priority)
        self.variables.update(variables or {})

    async def hangup(self) -> None:
        self.hung_up = True


def simulated_session(caller: str, line: str, on_play: Callable[[Sequence[str]], None] | None = None
                      ) -> tuple[CallSession, SimulatedChannel, MemorySink]:
    call_id = f"sim-{next(_ids)}"
    channel = SimulatedChannel(call_id, on_play)
    sink = MemorySink()
    record = JourneyRecord(call_id=call_id, caller=caller, dnis=line, started_at=datetime.now(UTC))
    session = CallSession(Arrival(call_id, caller, line), channel, Journey(record, sink))
    channel.session = session
    return session, channel, sink


async def _until_ended(call: asyncio.Task[None]) -> None:
    """Wait for a simulated call's task; if we are cancelled, the call is given up first (its
    cancellation is the call's end, and ours still propagates)."""
    try:
        await asyncio.wait({call})
    finally:
        if not call.done():
            call.cancel()
            await asyncio.wait({call})
    call.result()


def _call_task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.create_task(coro, name="simulated-call")


@dataclass
class Preview:
    """What a caller hears from answer up to and including the first menu, and its options."""

    caller: str
    line: str
    at: datetime
    record: JourneyRecord
    media: list[str]
    menu: str | None = None
    options: list[dict[str, str]] = field(default_factory=list)
    ended: str | None = None  # where the call went if it never reached a menu

    def as_json(self) -> dict[str, Any]:
        r = self.record
        return {"caller": self.caller, "line": self.line, "at": self.at.isoformat(),
                "customer_id": r.customer_id, "segment": r.segment, "language": r.language,
                "menu_version": r.menu_version, "path": r.path, "media": self.media, "menu": self.menu,
                "options": self.options, "ended": self.ended}


async def preview(handler: HotlineFlow, *, caller: str, line: str, at: datetime,
                  fallback: Fallback = FALLBACK) -> Preview:
    session, channel, _ = simulated_session(caller, line)
    result = Preview(caller, line, at, session.journey.record, channel.played)

    class Listener:
        async def menu_offered(self, node: Node, media: list[str], options: list[tuple[str, str]]) -> None:
            result.menu = node.id
            result.media.extend(media)
            result.options = [{"key": k, "label": label} for k, label in options]
            raise ChannelGone("the preview ends at the first menu")  # as a caller hanging up there

    await _until_ended(_call_task(run_call(session, partial(handler, at=at, listener=Listener()), fallback)))
    if result.menu is not None:
        return result
    if channel.continued_to:
        result.ended = f"transferred to {channel.continued_to[0]}/{channel.continued_to[1]}"
    else:
        result.ended = "hung up"
    return result


async def simulate(handler: HotlineFlow, *, caller: str, line: str, at: datetime,
                   on_play: Callable[[Sequence[str]], None],
                   on_menu: Callable[[Node, list[tuple[str, str]]], None],
                   digits: asyncio.Queue[str | None],
                   fallback: Fallback = FALLBACK) -> tuple[JourneyRecord, SimulatedChannel]:
    """Run one call; digits typed arrive on `digits` (None = the caller hangs up)."""
    session, channel, _ = simulated_session(caller, line, on_play)

    class Listener:
        async def menu_offered(self, node: Node, media: list[str], options: list[tuple[str, str]]) -> None:
            on_menu(node, options)

    call = _call_task(run_call(session, partial(handler, at=at, listener=Listener()), fallback))

    async def feed() -> None:
        while (typed := await digits.get()) is not None:
            for digit in typed:
                session.on_dtmf(digit)
        session.on_hangup()
        call.cancel()

    feeder = asyncio.create_task(feed(), name="simulated-caller")
    try:
        await _until_ended(call)
    finally:
        feeder.cancel()
        await asyncio.wait({feeder})
    return session.journey.record, channel
