"""The ARI edge, its event router and the call registry never leave a caller in silence, and
shutdown tells the truth: the dialplan fallback retried, an application taken over by another
server, a handshake that never completes, a StasisStart still queued at resync, an event-reader
crash, a failing cleanup step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from agi_app.ari.channel import AriChannel
from agi_app.ari.client import AriClient
from agi_app.ari.router import EventsLost
from agi_app.cli.serve import EXIT_REPLACED
from agi_app.db.pool import connection
from agi_app.engine.channel import ChannelFailed, ChannelGone
from agi_app.flows.loader import load_document
from agi_app.flows.model import FlowSet
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, fetch, serve_process, settings_for, start_hotline
from tests.fast.flowkit import doc
from tests.support.demo import UNKNOWN

FALLBACK = ("hotline-fallback", "s", 1)

Serve = Callable[..., Awaitable[Hotline]]


@pytest_asyncio.fixture
async def serve(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> AsyncIterator[Serve]:
    """Start a hotline with settings overrides (`serve(ari_budget_ms=300)`); stopped after the test,
    whatever its `run` ended with (some tests make it fail on purpose)."""
    fake_ari.media_duration = lambda uri: 0.05
    started: list[Hotline] = []

    async def start(flows: FlowSet | None = None, **overrides: Any) -> Hotline:
        line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, **overrides), flows)
        started.append(line)
        return line

    yield start
    for line in started:
        line.shutdown.set()
        await asyncio.wait({line.task}, timeout=20)
        if line.task.done() and not line.task.cancelled():
            line.task.exception()  # retrieved: the test asserted on it where it mattered


# ------------------------------------------------------------------------------ the channel protocol
async def test_ari_failures_reach_the_engine_only_as_its_own_channel_errors(fake_ari: FakeAri) -> None:
    async with AriClient(fake_ari.url, "hotline", "hotline-dev", "hotline", timeout=0.3) as client:
        call = await fake_ari.place_call(UNKNOWN, "95000")
        channel = AriChannel(client, call)
        fake_ari.fault("POST", r"/answer$", status=500)
        with pytest.raises(ChannelFailed):
            await channel.answer()
        fake_ari.fault("POST", r"/continue$", hold=True)  # the request's budget runs out
        with pytest.raises(ChannelFailed):
            await channel.continue_in_dialplan("hotline-fallback", "s")
        with pytest.raises(ChannelGone):
            await AriChannel(client, "no-such-channel").answer()
        await fake_ari.hangup(call)


# ------------------------------------------------------------------------------ limits from the settings
async def test_calls_beyond_max_calls_go_to_the_dialplan_fallback(serve: Serve, fake_ari: FakeAri) -> None:
    line = await serve(max_calls=1)
    fake_ari.media_duration = lambda uri: 5.0
    first = await line.call(UNKNOWN)
    await fake_ari.wait_for(lambda: bool(line.played(first)))
    second = await line.call(UNKNOWN)
    await fake_ari.wait_for(lambda: fake_ari.channel(second).continued_to is not None)
    assert fake_ari.channel(second).continued_to == FALLBACK and second not in line.server.calls.sessions
    assert first in line.server.calls.sessions
    sent_away = await line.wait_ended(second)  # the KPIs count the callers we could not serve too
    assert (sent_away["outcome"], sent_away["transfer_target"], sent_away["caller"]) == (
        "transferred", "fallback:at_capacity", UNKNOWN)
    await fake_ari.hangup(first)


async def test_calls_arriving_while_draining_go_to_the_fallback_with_a_journey(serve: Serve, fake_ari: FakeAri,
                                                                              dsn: str) -> None:
    line = await serve()
    fake_ari.media_duration = lambda uri: 5.0
    first = await line.call(UNKNOWN)
    await fake_ari.wait_for(lambda: bool(line.played(first)))
    line.shutdown.set()  # the first call keeps its grace; a new one is not taken
    await fake_ari.wait_for(lambda: not line.server.calls._accepting)
    late = await line.call(UNKNOWN)
    await fake_ari.wait_for(lambda: fake_ari.channel(late).continued_to is not None)
    await fake_ari.hangup(first)
    await asyncio.wait_for(line.task, 10)
    async with connection(dsn) as conn:
        row = await conn.fetchrow("SELECT outcome, transfer_target FROM calls WHERE call_id = $1", late)
    assert row is not None and dict(row) == {"outcome": "transferred", "transfer_target": "fallback:draining"}


async def test_the_fallback_the_settings_name_is_where_a_failed_call_goes(serve: Serve, fake_ari: FakeAri) -> None:
    line = await serve(fallback_context="hotline-other", fallback_extension="retry")
    fake_ari.fault("POST", r"/answer$", status=500)
    call = await line.call(UNKNOWN)
    await fake_ari.wait_for(lambda: fake_ari.channel(call).continued_to is not None)
    assert fake_ari.channel(call).continued_to == ("hotline-other", "retry", 1)


async def test_live_calls_take_their_limits_from_the_settings(serve: Serve, fake_ari: FakeAri) -> None:
    line = await serve(secure_quiet_gap_ms=250, playback_check_ms=1500, dtmf_capacity=4)
    fake_ari.media_duration = lambda uri: 5.0
    call = await line.call(UNKNOWN)
    await fake_ari.wait_for(lambda: bool(line.played(call)))
    session = line.server.calls.sessions[call]
    assert (session.secure_quiet_gap_s, session.playback_check_s) == (0.25, 1.5)
    for digit in "12345":
        session.on_dtmf(digit)
    assert session.dtmf.dropped == 1
    await fake_ari.hangup(call)


async def test_a_key_as_a_prompt_starts_stops_it_though_asterisk_refuses_the_first_stop(
        serve: Serve, fake_ari: FakeAri) -> None:
    """Asterisk refuses a stop that lands as a playback starts (500 "Could not stop playback"): asked
    again, it stops. The caller's key counts, and the call stays in the flow instead of being given
    up to the fallback (found by the fault matrix's DTMF flood on the real Asterisk)."""
    line = await serve()
    fake_ari.media_duration = lambda uri: 5.0
    call = await line.call(UNKNOWN)
    await fake_ari.wait_for(lambda: bool(line.played(call)))
    refused = fake_ari.fault("DELETE", r"^/playbacks/", status=500)
    session = line.server.calls.sessions[call]
    await fake_ari.press(call, "1")
    await fake_ari.wait_for(lambda: "main" in session.journey.record.path[:-1])  # the key took the call on
    assert refused.hits == 1 and fake_ari.channel(call).continued_to is None
    await fake_ari.hangup(call)


# ------------------------------------------------------------------------------ the fallback
async def test_the_fallback_is_retried_after_a_timeout_until_the_caller_reaches_the_dialplan(
        serve: Serve, fake_ari: FakeAri) -> None:
    line = await serve(ari_budget_ms=300)
    fake_ari.fault("POST", r"/answer$", status=500)  # the call fails at once: it is owed the fallback
    timeouts = fake_ari.fault("POST", r"/continue$", hold=True, times=2)  # whose first two requests time out
    call = await line.call(UNKNOWN)
    await fake_ari.wait_for(lambda: fake_ari.channel(call).continued_to is not None, timeout=10)
    assert fake_ari.channel(call).continued_to == FALLBACK
    assert timeouts.hits == 2 and not fake_ari.channel(call).hungup


async def test_a_fallback_that_kept_failing_is_tried_again_at_the_next_resync(serve: Serve, fake_ari: FakeAri) -> None:
    line = await serve(fallback_budget_ms=1000)
    fake_ari.fault("POST", r"/answer$", status=500)
    failing = fake_ari.fault("POST", r"/continue$", status=500, times=None)  # longer than the budget
    call = await line.call(UNKNOWN)
    row = await line.wait_ended(call)
    assert row["outcome"] == "error" and fake_ari.channel(call).continued_to is None
    failing.remaining = 2  # Asterisk still fails twice more, then answers
    await fake_ari.drop_websocket()
    await fake_ari.wait_connected(timeout=10)
    await fake_ari.wait_for(lambda: fake_ari.channel(call).continued_to is not None, timeout=10)
    assert fake_ari.channel(call).continued_to == FALLBACK


async def test_a_hangup_that_failed_leaves_the_caller_to_the_fallback_not_to_silence(
        serve: Serve, fake_ari: FakeAri) -> None:
    goodbye = load_document(doc({"bye": {"type": "hangup", "prompt": "{{ sound('goodbye') }}"}}, start="bye"))[0]
    line = await serve(goodbye, ari_budget_ms=300)
    timeout = fake_ari.fault("DELETE", r"^/channels/[^/]+$", hold=True)  # the hang-up request times out
    call = await line.call(UNKNOWN)
    await fake_ari.wait_for(lambda: fake_ari.channel(call).continued_to is not None, timeout=10)
    assert timeout.hits == 1
    assert fake_ari.channel(call).continued_to == FALLBACK and not fake_ari.channel(call).hungup


# ------------------------------------------------------------------------------ another server takes the app
async def test_a_server_whose_application_another_takes_over_hands_its_calls_to_the_fallback_and_exits_non_zero(
        fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    fake_ari.media_duration = lambda uri: 5.0  # the first server's call is mid-prompt
    stderr = tmp_path / "first.stderr"
    with stderr.open("w") as err:
        first = serve_process(fake_ari, dsn, tmp_path, stderr=err)
    try:
        await fake_ari.wait_connected(timeout=20)
        call = await fake_ari.place_call(UNKNOWN, "95000")
        await fake_ari.wait_for(lambda: bool(fake_ari.channel(call).played), timeout=10)
        auth = {"Authorization": aiohttp.encode_basic_auth("hotline", "hotline-dev")}
        async with aiohttp.ClientSession(headers=auth) as second, \
                second.ws_connect(f"{fake_ari.url}/ari/events", params={"app": "hotline"}):
            await fake_ari.wait_for(lambda: first.poll() is not None, timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
        first.wait()
    assert fake_ari.channel(call).continued_to == FALLBACK and not fake_ari.channel(call).hungup
    assert first.returncode == EXIT_REPLACED
    assert "another hotline serve took over ARI application 'hotline'" in stderr.read_text()


# ------------------------------------------------------------------------------ reconnect and resync
async def test_a_websocket_handshake_that_never_completes_does_not_hold_up_the_reconnect(
        serve: Serve, fake_ari: FakeAri) -> None:
    line = await serve(ari_handshake_ms=200)
    stalled = fake_ari.fault("GET", r"^/events$", hold=True)  # accepted, never answered
    await fake_ari.drop_websocket()
    await fake_ari.wait_for(lambda: stalled.hits == 1, timeout=10)
    await fake_ari.wait_connected(timeout=10)  # the next attempt got through
    call = await line.call(UNKNOWN)
    await fake_ari.wait_for(lambda: bool(line.played(call)))
    await fake_ari.hangup(call)


async def test_a_channel_listed_at_resync_before_its_stasis_start_arrived_goes_to_one_place_only(
        serve: Serve, fake_ari: FakeAri, dsn: str) -> None:
    line = await serve(resync_settle_ms=2000)  # room for the test to act inside the window
    await fake_ari.wait_request("GET", "/applications/hotline")  # the resync at start
    early = await fake_ari.place_call(UNKNOWN, "95000", hold_start=True)  # StasisStart just behind the list
    late = await fake_ari.place_call(UNKNOWN, "95000", hold_start=True)  # StasisStart only after the decision
    in_flight = fake_ari.fault("POST", rf"^/channels/{late}/continue$", hold=True)
    await fake_ari.drop_websocket()
    await fake_ari.wait_request("GET", "/applications/hotline")  # lists both, neither known yet
    fake_ari.deliver_stasis_start(early)
    await fake_ari.wait_request("POST", rf"/channels/{early}/answer")
    await fake_ari.wait_for(lambda: in_flight.hits == 1, timeout=10)  # unknown after the wait: to the fallback
    fake_ari.deliver_stasis_start(late)  # ...and now its StasisStart arrives
    barrier = await line.call(UNKNOWN)  # events are handled in order: once this one is answered,
    await fake_ari.wait_request("POST", rf"/channels/{barrier}/answer")  # the late StasisStart was seen
    in_flight.release()
    await fake_ari.wait_for(lambda: fake_ari.channel(late).continued_to is not None)
    assert fake_ari.channel(late).continued_to == FALLBACK
    assert [r.path for r in fake_ari.requests if late in r.path] == [f"/ari/channels/{late}/continue"]
    assert late not in line.server.calls.sessions
    assert not await fetch(dsn, "SELECT call_id FROM calls WHERE call_id = $1", late)
    assert early in line.server.calls.sessions and fake_ari.channel(early).continued_to is None
    assert not [r for r in fake_ari.requests if r.path == f"/ari/channels/{early}/continue"]
    await fake_ari.hangup(early)
    await fake_ari.hangup(barrier)


# ------------------------------------------------------------------------------ shutdown tells the truth
async def test_an_event_reader_crash_hands_the_calls_to_the_fallback_and_makes_the_server_fail(
        serve: Serve, fake_ari: FakeAri, monkeypatch: pytest.MonkeyPatch) -> None:
    line = await serve()
    fake_ari.media_duration = lambda uri: 5.0
    call = await line.call(UNKNOWN)
    await fake_ari.wait_for(lambda: bool(line.played(call)))

    def routing_bug(event: object) -> None:
        raise RuntimeError("a bug in event routing")

    monkeypatch.setattr(line.server.router, "handle", routing_bug)
    await fake_ari.press(call, "1")
    with pytest.raises(EventsLost, match="RuntimeError"):
        await asyncio.wait_for(line.task, 15)
    assert fake_ari.channel(call).continued_to == FALLBACK


async def test_a_failing_cleanup_step_does_not_skip_the_others(
        serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    line = await serve()
    sink = line.server.sink
    close_sink = sink.close

    async def close_then_fail() -> None:
        await close_sink()
        raise OSError("no space left on device")

    monkeypatch.setattr(sink, "close", close_then_fail)
    line.shutdown.set()
    with pytest.raises(OSError, match="no space left"):
        await asyncio.wait_for(line.task, 15)
    with pytest.raises(RuntimeError, match="not called"):
        line.server.client.session  # noqa: B018 - closed after the failed step
    assert line.server.pool.is_closing()
