"""Database slow or down, event WebSocket dropped, server restarted mid-call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agi_app.engine.session import CallState
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, import_demo_customers, serve_process, settings_for, start_hotline
from tests.support.demo import KNOWN_ZH, MAIN_ZH, UNKNOWN
from tests.support.proxy import TcpProxy

StartProxied = Callable[..., Awaitable[Hotline]]


@pytest_asyncio.fixture
async def start_proxied(fake_ari: FakeAri, dsn: str, db_proxy: TcpProxy, tmp_path: Path) -> AsyncIterator[StartProxied]:
    """Start a hotline whose database connections go through `db_proxy`, with settings overrides."""
    await import_demo_customers(dsn)
    fake_ari.media_duration = lambda uri: 0.05
    started: list[Hotline] = []

    async def start(**overrides: Any) -> Hotline:
        settings = settings_for(fake_ari, db_proxy.through(dsn), tmp_path, **overrides)
        started.append(await start_hotline(fake_ari, dsn, settings))
        return started[-1]

    yield start
    db_proxy.delay, db_proxy.refuse = 0.0, False
    for line in started:
        await line.stop()


@pytest_asyncio.fixture
async def proxied_hotline(start_proxied: StartProxied) -> Hotline:
    """A hotline whose database goes through the proxy (lookup and call-start budgets 300 ms)."""
    return await start_proxied(lookup_budget_ms=300, call_start_budget_ms=300)


async def test_database_down_caller_still_gets_the_menu_and_an_agent(proxied_hotline: Hotline, db_proxy: TcpProxy) -> None:
    hotline = proxied_hotline
    db_proxy.go_down()
    call = await hotline.call(KNOWN_ZH)
    await hotline.heard(call, MAIN_ZH)
    assert hotline.played(call)[0] == "sound:hotline/zh/welcome", "treated as unknown: no name"
    await hotline.ari.press(call, "0")
    await hotline.ari.wait_for(lambda: hotline.ari.channel(call).continued_to is not None)
    assert hotline.ari.channel(call).continued_to == ("hotline-agents", "general-zh", 1)


async def test_slow_database_lookup_is_cut_at_its_budget(proxied_hotline: Hotline, db_proxy: TcpProxy) -> None:
    hotline = proxied_hotline
    db_proxy.delay = 2.0
    started = asyncio.get_running_loop().time()
    call = await hotline.call(KNOWN_ZH)
    await hotline.ari.wait_for(lambda: bool(hotline.played(call)), timeout=5)
    assert asyncio.get_running_loop().time() - started < 1.5, "the caller did not wait for the slow database"
    assert hotline.played(call)[0] == "sound:hotline/zh/welcome"
    db_proxy.delay = 0.0
    await hotline.ari.press(call, "0")
    row = await hotline.wait_ended(call, timeout=20)
    assert row["customer_id"] is None and row["outcome"] == "transferred"


def in_flow(hotline: Hotline, call: str) -> bool:
    session = hotline.server.calls.sessions.get(call)
    return session is not None and session.state is CallState.IN_FLOW


async def test_hangup_during_the_lookup_cancels_the_call_task(start_proxied: StartProxied, db_proxy: TcpProxy) -> None:
    hotline = await start_proxied(lookup_budget_ms=5000, call_start_budget_ms=5000)
    db_proxy.delay = 1.0
    call = await hotline.call(KNOWN_ZH)
    # Answered: from now on the call waits for its start facts, which the slow database holds up.
    await hotline.ari.wait_for(lambda: in_flow(hotline, call))
    await hotline.ari.hangup(call)
    await hotline.ari.wait_for(lambda: call not in hotline.server.calls.sessions, timeout=2)
    db_proxy.delay = 0.0
    row = await hotline.wait_ended(call, timeout=20)
    assert row["outcome"] == "abandoned" and row["path"] == []
    assert not hotline.played(call)


async def test_calendar_emergency_and_notices_have_a_budget_of_their_own(
        start_proxied: StartProxied, db_proxy: TcpProxy, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    hotline = await start_proxied(lookup_budget_ms=5000, call_start_budget_ms=100)
    db_proxy.delay = 0.3
    call = await hotline.call(KNOWN_ZH)
    await hotline.heard(call, MAIN_ZH, timeout=10)
    db_proxy.delay = 0.0
    await hotline.ari.press(call, "0")
    row = await hotline.wait_ended(call, timeout=20)
    assert row["customer_id"] == "C001", "the lookup had its own, longer budget"
    for what in ("calendar", "emergency", "notices"):
        assert f"event={what}_unavailable call={call}" in caplog.text, "cut at the call-start budget"


def playbacks_finished(ari: FakeAri, call: str) -> int:
    """How many PlaybackFinished events the fake has sent for the call (heard or not)."""
    return sum(1 for e in ari.events if e["type"] == "PlaybackFinished"
               and e["playback"]["target_uri"] == f"channel:{call}")


async def test_websocket_drop_mid_call_reconnects_and_the_call_goes_on(hotline: Hotline) -> None:
    hotline.ari.media_duration = lambda uri: 0.3
    ari = hotline.ari
    await ari.wait_request("GET", "/applications/hotline")  # the resync at start
    call = await hotline.call(UNKNOWN)
    await hotline.heard(call, MAIN_ZH)
    finished = playbacks_finished(ari, call)
    reconnect = ari.fault("GET", r"^/events$", hold=True, times=None)
    await ari.drop_websocket()
    await ari.wait_for(lambda: playbacks_finished(ari, call) > finished)  # the menu prompt ended unheard
    reconnect.release()
    await ari.wait_connected(timeout=10)
    await ari.wait_request("GET", "/applications/hotline")  # the resync after the reconnect
    await ari.press(call, "3")
    row = await hotline.wait_ended(call)
    assert row["path"][-2:] == ["main", "agent_cards"] and row["outcome"] == "transferred"


async def test_caller_hanging_up_while_disconnected_is_noticed_after_reconnect(hotline: Hotline) -> None:
    hotline.ari.media_duration = lambda uri: 5.0
    call = await hotline.call(UNKNOWN)
    await hotline.ari.wait_for(lambda: bool(hotline.played(call)))
    await hotline.ari.drop_websocket()
    await hotline.ari.hangup(call)  # StasisEnd is lost: nobody is connected
    await hotline.ari.wait_connected(timeout=10)
    row = await hotline.wait_ended(call)
    assert row["outcome"] == "abandoned"


async def test_calls_left_by_a_crashed_server_go_to_the_fallback(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    fake_ari.media_duration = lambda uri: 3.0
    crashing = serve_process(fake_ari, dsn, tmp_path)
    try:
        await fake_ari.wait_connected(timeout=20)
        call = await fake_ari.place_call(UNKNOWN, "95000")
        await fake_ari.wait_for(lambda: bool(fake_ari.channel(call).played))
    finally:
        crashing.kill()  # no drain: the channel stays in Stasis, mid-prompt
        crashing.wait()
    second = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path))
    await fake_ari.wait_for(lambda: fake_ari.channel(call).continued_to is not None, timeout=10)
    assert fake_ari.channel(call).continued_to == ("hotline-fallback", "s", 1)
    assert not fake_ari.channel(call).hungup
    await second.stop()
