"""The call engine's primitives over the real ARI protocol: the event router and call registry
with a scripted handler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from agi_app.admin.simulate import simulate, simulated_session
from agi_app.ari.client import AriClient
from agi_app.ari.router import EventRouter
from agi_app.config import DEFAULTS
from agi_app.engine.channel import ChannelFailed
from agi_app.engine.journey import JourneyRecord, MemorySink
from agi_app.engine.lifecycle import outcome
from agi_app.engine.registry import CallRegistry
from agi_app.engine.session import CallSession, CallState, DigitInput
from tests.fake_ari.server import FakeAri

Script = Callable[[CallSession], Awaitable[None]]


class Harness:
    def __init__(self, ari: FakeAri) -> None:
        self.ari = ari
        self.script: Script | None = None
        self.results: dict[str, object] = {}
        self.sink = MemorySink()

    async def handler(self, call: CallSession) -> None:
        assert self.script is not None
        await self.script(call)


@pytest_asyncio.fixture
async def harness(fake_ari: FakeAri) -> AsyncIterator[Harness]:
    h = Harness(fake_ari)
    client = AriClient(fake_ari.url, "hotline", "hotline-dev", "hotline")
    await client.open()
    calls = CallRegistry(h.handler, h.sink)
    router = EventRouter(client, calls, resync_settle_s=DEFAULTS.resync_settle_s)
    stop = asyncio.Event()
    task = asyncio.create_task(router.run(stop))
    await fake_ari.wait_connected()
    yield h
    await calls.drain(1)
    stop.set()
    await asyncio.wait_for(task, 5)
    await client.close()


async def test_get_digits_with_terminator_and_inter_digit_timeout(harness: Harness) -> None:
    async def script(call: CallSession) -> None:
        await call.answer()
        harness.results["first"] = await call.get_digits(max_digits=8, first_timeout=2, inter_timeout=0.5,
                                                         terminator="#")
        harness.results["second"] = await call.get_digits(max_digits=8, first_timeout=2, inter_timeout=0.3)
        harness.results["third"] = await call.get_digits(max_digits=2, first_timeout=2, inter_timeout=1)
        harness.results["fourth"] = await call.get_digits(max_digits=2, first_timeout=0.2)
        await call.hangup()

    harness.script = script
    call = await harness.ari.place_call("13800138000", "95000")
    await harness.ari.wait_request("POST", f"/channels/{call}/answer")
    await harness.ari.press(call, "1234#")
    await harness.ari.press(call, "56")  # then silence: inter-digit timeout ends it
    await harness.ari.wait_for(lambda: "second" in harness.results)
    await harness.ari.press(call, "789")  # max 2 digits: "9" stays buffered for the next collect
    await harness.ari.wait_for(lambda: harness.ari.channel(call).hungup)
    assert harness.results == {
        "first": DigitInput("1234", "terminator"),
        "second": DigitInput("56", "timeout"),
        "third": DigitInput("78", "max"),
        "fourth": DigitInput("9", "timeout"),
    }


async def test_digit_during_a_media_list_stops_it_and_is_kept(harness: Harness) -> None:
    harness.ari.media_duration = lambda uri: 2.0

    async def script(call: CallSession) -> None:
        harness.results["interrupted"] = await call.play(["sound:a", "sound:b", "sound:c"])
        harness.results["skipped"] = await call.play(["sound:d"])  # type-ahead: not even started
        harness.results["digits"] = await call.get_digits(max_digits=1)
        await call.hangup()

    harness.script = script
    call = await harness.ari.place_call("13800138000", "95000")
    await harness.ari.wait_for(lambda: harness.ari.channel(call).played == ["sound:a"])
    await harness.ari.press(call, "5")
    await harness.ari.wait_for(lambda: harness.ari.channel(call).hungup)
    assert harness.results == {"interrupted": True, "skipped": True, "digits": DigitInput("5", "max")}
    assert harness.ari.channel(call).played == ["sound:a"]
    assert harness.ari.channel(call).stopped


async def test_uninterruptible_playback_ignores_digits_but_keeps_them(harness: Harness) -> None:
    harness.ari.media_duration = lambda uri: 0.3

    async def script(call: CallSession) -> None:
        harness.results["interrupted"] = await call.play(["sound:legal"], interruptible=False)
        harness.results["digits"] = await call.get_digits(max_digits=1)
        await call.hangup()

    harness.script = script
    call = await harness.ari.place_call("13800138000", "95000")
    await harness.ari.wait_for(lambda: bool(harness.ari.channel(call).played))
    await harness.ari.press(call, "3")
    await harness.ari.wait_for(lambda: harness.ari.channel(call).hungup)
    assert harness.results == {"interrupted": False, "digits": DigitInput("3", "max")}
    assert not harness.ari.channel(call).stopped


async def test_an_exception_in_a_flow_sends_the_caller_to_the_fallback(harness: Harness) -> None:
    async def script(call: CallSession) -> None:
        await call.answer()
        raise RuntimeError("bug in a flow")

    harness.script = script
    call = await harness.ari.place_call("13800138000", "95000")
    await harness.ari.wait_for(lambda: harness.ari.channel(call).continued_to is not None)
    assert harness.ari.channel(call).continued_to == ("hotline-fallback", "s", 1)
    await harness.ari.wait_for(lambda: harness.sink.calls[call].outcome is not None)
    assert harness.sink.calls[call].outcome == "error"


async def test_a_lost_playback_finished_event_does_not_leave_the_caller_in_silence() -> None:
    session, channel, _ = simulated_session("13800138000", "95000")
    session.playback_check_s = 0.05

    async def never_finishes(media: object, playback_id: str) -> None:
        channel.played.extend(media)  # type: ignore[arg-type]

    channel.start_playback = never_finishes  # type: ignore[method-assign]  # Asterisk "forgets" the event
    assert await asyncio.wait_for(session.play(["sound:long"]), 2) is False
    assert await asyncio.wait_for(session.play(["sound:legal"], interruptible=False), 2) is False
    assert session.active_playback is None


async def test_a_call_is_ringing_then_in_flow_then_handed_off_and_a_failed_hand_off_leaves_it_ours() -> None:
    session, channel, _ = simulated_session("13800138000", "95000")
    assert session.state is CallState.RINGING
    await session.answer()
    assert session.state is CallState.IN_FLOW

    async def refused(context: str, extension: str, priority: int = 1, **_: object) -> None:
        raise ChannelFailed("the dialplan did not take it")

    channel.continue_in_dialplan = refused  # type: ignore[method-assign]
    with pytest.raises(ChannelFailed):
        await session.transfer("hotline-agents", "general", "general", language="zh")
    assert session.state is CallState.IN_FLOW and session.ours
    await session.hangup()
    assert session.state is CallState.HANDED_OFF and not session.ours


async def test_a_simulated_call_whose_flow_fails_goes_to_the_fallback_as_a_live_call_does() -> None:
    async def broken(call: CallSession, **_: object) -> None:
        await call.answer()
        raise RuntimeError("bug in a flow")

    record, channel = await simulate(broken, caller="13800138000", line="95000",  # type: ignore[arg-type]
                                     at=datetime.now(UTC), on_play=lambda media: None,
                                     on_menu=lambda node, options: None, digits=asyncio.Queue())
    assert channel.continued_to == ("hotline-fallback", "s", 1)
    assert record.outcome == "error" and record.transfer_target == "fallback:error"


def test_how_a_call_ended_decides_its_outcome() -> None:
    def record(*, transfer: str | None = None, served: bool = False) -> JourneyRecord:
        return JourneyRecord("c1", "13800138000", "95000", datetime.now(UTC), transfer_target=transfer,
                             services=[("balance", "ok")] if served else [("balance", "failed")])

    assert outcome("flow_ended", record(transfer="general")) == "transferred"
    assert outcome("flow_ended", record(served=True)) == "self_service"
    assert outcome("flow_ended", record()) == "hangup"
    assert outcome("caller_left", record(served=True)) == "self_service"
    assert outcome("caller_left", record()) == "abandoned"
    assert outcome("handed_over", record(transfer="fallback:shutdown")) == "transferred"
    assert outcome("failed", record(transfer="fallback:error")) == "error"
