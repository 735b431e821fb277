"""Recording the caller (`CallSession.record`) over the real ARI protocol: the request Asterisk gets,
the end by `#` or by the maximum length, and a caller who hangs up mid-message; and, on a channel
that loses the end of the recording, the stop after its maximum length."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from agi_app.admin.simulate import SimulatedChannel
from agi_app.ari.client import AriClient, AriNotFound, AriNotInStasis
from agi_app.ari.router import EventRouter
from agi_app.config import DEFAULTS, Settings
from agi_app.engine.channel import ChannelFailed
from agi_app.engine.journey import Journey, JourneyRecord, MemorySink
from agi_app.engine.registry import CallRegistry
from agi_app.engine.session import Arrival, CallSession, DigitInput, Recording
from tests.fake_ari.server import FakeAri

Script = Callable[[CallSession], Awaitable[None]]


class Calls:
    """The engine's event router and registry on the fake ARI, each call running `script`."""

    def __init__(self) -> None:
        self.script: Script | None = None
        self.results: dict[str, object] = {}
        self.sink = MemorySink()
        self.registry: CallRegistry | None = None

    async def handler(self, call: CallSession) -> None:
        assert self.script is not None
        await self.script(call)


@pytest_asyncio.fixture
async def calls(fake_ari: FakeAri) -> AsyncIterator[Calls]:
    h = Calls()
    client = AriClient(fake_ari.url, "hotline", "hotline-dev", "hotline")
    await client.open()
    registry = h.registry = CallRegistry(h.handler, h.sink)
    router = EventRouter(client, registry, resync_settle_s=DEFAULTS.resync_settle_s)
    stop = asyncio.Event()
    task = asyncio.create_task(router.run(stop))
    await fake_ari.wait_connected()
    yield h
    await registry.drain(1)
    stop.set()
    await asyncio.wait_for(task, 5)
    await client.close()
    assert fake_ari.violations == []


async def test_a_recording_ends_at_the_hash_which_is_not_read_as_the_next_answer(fake_ari: FakeAri,
                                                                               calls: Calls) -> None:
    async def script(call: CallSession) -> None:
        await call.answer()
        calls.results["recording"] = await call.record("complaint", max_seconds=60, max_silence_seconds=5)
        calls.results["next"] = await call.get_digits(first_timeout=0.5)
        await call.hangup()

    calls.script = script
    call = await fake_ari.place_call("13800138000", "95000")
    request = await fake_ari.wait_request("POST", f"/channels/{call}/record")
    await fake_ari.press(call, "12#")  # digits while speaking, then the end
    await fake_ari.wait_for(lambda: fake_ari.channel(call).hungup)
    name = request.query["name"][0]
    assert re.fullmatch(r"complaint-[0-9a-f]{32}", name)
    assert {k: v[0] for k, v in request.query.items()} == {
        "name": name, "format": "wav", "maxDurationSeconds": "60", "maxSilenceSeconds": "5", "ifExists": "fail",
        "beep": "true", "terminateOn": "#"}
    assert calls.results == {"recording": Recording(name, 0), "next": DigitInput("", "timeout")}
    assert fake_ari.recordings[name].state == "done"


async def test_a_recording_ends_by_itself_at_its_maximum_length(fake_ari: FakeAri, calls: Calls) -> None:
    async def script(call: CallSession) -> None:
        await call.answer()
        calls.results["recording"] = await call.record("complaint", max_seconds=1, max_silence_seconds=0)
        await call.hangup()

    calls.script = script
    call = await fake_ari.place_call("13800138000", "95000")
    await fake_ari.wait_for(lambda: fake_ari.channel(call).hungup, timeout=5)
    recording = calls.results["recording"]
    assert isinstance(recording, Recording)
    assert recording.duration_s == 1
    assert fake_ari.channel(call).recorded == [recording.name]


async def test_a_caller_who_hangs_up_mid_message_ends_the_call_and_the_recording_is_kept(
        fake_ari: FakeAri, calls: Calls) -> None:
    async def script(call: CallSession) -> None:
        await call.answer()
        calls.results["recording"] = await call.record("complaint", max_seconds=60, max_silence_seconds=0)

    calls.script = script
    call = await fake_ari.place_call("13800138000", "95000")
    request = await fake_ari.wait_request("POST", f"/channels/{call}/record")
    await fake_ari.hangup(call)
    await fake_ari.wait_for(lambda: calls.sink.calls[call].outcome is not None)
    assert "recording" not in calls.results  # the flow did not go on
    assert calls.sink.calls[call].outcome == "abandoned"
    assert fake_ari.recordings[request.query["name"][0]].state == "done"


async def test_a_call_given_up_mid_message_stops_the_recording_before_it_goes_to_the_fallback(
        fake_ari: FakeAri, calls: Calls) -> None:
    async def script(call: CallSession) -> None:
        await call.answer()
        await call.record("complaint", max_seconds=60, max_silence_seconds=0)

    calls.script = script
    call = await fake_ari.place_call("13800138000", "95000")
    request = await fake_ari.wait_request("POST", f"/channels/{call}/record")
    assert calls.registry is not None
    await calls.registry.drain(0)  # a shutdown
    name = request.query["name"][0]
    stop = await fake_ari.wait_request("POST", f"/recordings/live/{name}/stop")
    continued = await fake_ari.wait_request("POST", f"/channels/{call}/continue")
    assert fake_ari.requests.index(stop) < fake_ari.requests.index(continued)
    assert fake_ari.recordings[name].state == "done"
    assert fake_ari.channel(call).continued_to == (DEFAULTS.fallback_context, DEFAULTS.fallback_extension, 1)


async def test_a_label_that_is_not_a_plain_name_never_reaches_a_file_name(fake_ari: FakeAri, calls: Calls) -> None:
    async def script(call: CallSession) -> None:
        await call.answer()
        await call.record("../etc/passwd", max_seconds=1, max_silence_seconds=0)
        await call.hangup()

    calls.script = script
    call = await fake_ari.place_call("13800138000", "95000")
    request = await fake_ari.wait_request("POST", f"/channels/{call}/record")
    assert re.fullmatch(r"rec-[0-9a-f]{32}", request.query["name"][0])


class SilentRecorder(SimulatedChannel):
    """Asterisk whose RecordingFinished is lost: the recording ends only when stopped."""

    def __init__(self, channel_id: str, *, answers_stop: bool) -> None:
        super().__init__(channel_id)
        self.stopped_recordings: list[str] = []
        self.answers_stop = answers_stop

    async def record(self, name: str, *, max_seconds: int, max_silence_seconds: int) -> None:
        self.recorded.append(name)

    async def stop_recording(self, name: str) -> None:
        self.stopped_recordings.append(name)
        if self.answers_stop:
            assert self.session is not None
            self.session.on_recording_finished(name, 1)


def silent_session(*, answers_stop: bool) -> tuple[CallSession, SilentRecorder]:
    channel = SilentRecorder("call-1", answers_stop=answers_stop)
    session = CallSession(Arrival("call-1", "13800138000", "95000"), channel,
                          Journey(JourneyRecord("call-1", "13800138000", "95000", datetime.now(UTC)), MemorySink()),
                          settings=Settings(recording_grace_ms=100))
    channel.session = session
    return session, channel


async def test_a_lost_end_of_recording_is_stopped_after_its_maximum_length_and_kept() -> None:
    session, channel = silent_session(answers_stop=True)
    recording = await asyncio.wait_for(session.record("complaint", max_seconds=1, max_silence_seconds=0), 3)
    assert recording == Recording(channel.recorded[0], 1)
    assert channel.stopped_recordings == channel.recorded


async def test_a_recording_that_does_not_stop_either_fails_the_call_to_the_fallback() -> None:
    session, channel = silent_session(answers_stop=False)
    with pytest.raises(ChannelFailed):
        await asyncio.wait_for(session.record("complaint", max_seconds=1, max_silence_seconds=0), 3)
    assert channel.stopped_recordings == channel.recorded


async def test_the_fake_answers_recordings_as_the_recorded_asterisk_did(fake_ari: FakeAri) -> None:
    """A used name is 409, a second stop 404, and a hangup finishes the recording between the
    hangup request and StasisEnd (tests/fixtures/ari/record.json)."""
    async with AriClient(fake_ari.url, "hotline", "hotline-dev", "hotline") as client:
        stream = client.events()
        await fake_ari.wait_connected()
        call = await fake_ari.place_call("13800138000", "95000")
        await client.answer(call)
        started = await client.record(call, "complaint-a", max_seconds=60, max_silence_seconds=0)
        assert (started["name"], started["state"]) == ("complaint-a", "queued")
        await client.stop_recording("complaint-a")
        with pytest.raises(AriNotFound):
            await client.stop_recording("complaint-a")
        with pytest.raises(AriNotInStasis) as used:  # 409, as for a channel out of Stasis
            await client.record(call, "complaint-a", max_seconds=60, max_silence_seconds=0)
        assert used.value.status == 409 and "complaint-a" in used.value.message
        await client.record(call, "complaint-b", max_seconds=60, max_silence_seconds=0)
        await fake_ari.hangup(call)
        await stream.close()
    kinds = [(e["type"], e.get("recording", {}).get("name")) for e in fake_ari.events]
    ending = kinds[kinds.index(("ChannelHangupRequest", None)):]
    assert ending.index(("RecordingFinished", "complaint-b")) < ending.index(("StasisEnd", None))
    assert fake_ari.violations == []
