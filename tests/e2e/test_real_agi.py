"""End-to-end: line 95002, handled in plain dialplan, asks `hotline serve` for its decisions over
FastAGI on real SIP calls, and reaches a demo agent through the queue the route hook chose; with
the AGI server out of reach it still reaches the general queue.

What the dialplan did is read from the observer (ChannelVarset of the HOTLINE_* variables the
hooks set, ChannelDialplan for the Queue it entered) and from AMI's agent events (who answered).

    flock /tmp/hotline-asterisk.lock .venv/bin/pytest tests/e2e/test_real_agi.py -q
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from agi_app.ami.events import AgentConnect, AgentEvent
from tests.e2e.conftest import Hotline
from tests.support.demo import VIP_EN
from tests.support.sipp import SipCall

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

LINE = "95002"


def variables(hotline: Hotline, channel: str) -> dict[str, str]:
    """The HOTLINE_* channel variables set on `channel` so far (last value wins)."""
    return {e["variable"]: e["value"] for e in hotline.observer.events
            if e.get("type") == "ChannelVarset" and e.get("channel", {}).get("id") == channel
            and e["variable"].startswith("HOTLINE_")}


def path(hotline: Hotline, channel: str) -> list[str]:
    """The hooks asked, prompts played and queue entered by the channel, in order."""
    shown = {"AGI": lambda data: data.split("/")[-1], "Playback": lambda data: data,
             "Queue": lambda data: data.split(",")[0]}
    return [f"{app} {shown[app](data)}" for app, data in hotline.observer.dialplan[channel] if app in shown]


async def answered_by_agent(events: list[AgentEvent], channel: str, timeout: float = 20) -> AgentConnect:
    async with asyncio.timeout(timeout):
        while True:
            found = [e for e in events if isinstance(e, AgentConnect) and e.unique_id == channel]
            if found:
                return found[0]
            await asyncio.sleep(0.1)


async def call_95002(hotline: Hotline, caller: str) -> tuple[asyncio.Task[Any], str]:
    """A call to 95002 that hangs up after the agent (or Asterisk) does; its channel id once seen."""
    channels = hotline.observer.channel_by_caller[caller]
    before = len(channels)
    call = asyncio.create_task(hotline.call(SipCall(caller=caller, line=LINE, max_duration=40)))
    await hotline.observer.until(lambda: len(channels) > before, 10, lambda: f"no new channel from {caller}")
    return call, channels[before]


@pytest_asyncio.fixture(loop_scope="session")
async def agi_unreachable(hotline: Hotline) -> AsyncIterator[None]:
    """The dialplan's FastAGI address pointed at a closed port (global HOTLINE_AGI_PORT, through
    ARI), as if `hotline serve` were down for the dialplan; restored afterwards."""
    env = hotline.env
    url = env["HOTLINE_ARI_URL"].rstrip("/") + "/ari/asterisk/variable"
    auth = aiohttp.encode_basic_auth(env["HOTLINE_ARI_USER"], env["HOTLINE_ARI_PASSWORD"])
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        async with session.get(url, params={"variable": "HOTLINE_AGI_PORT"}) as resp:
            port = (await resp.json())["value"]
        async with session.post(url, params={"variable": "HOTLINE_AGI_PORT", "value": "9"}) as resp:
            assert resp.status == 204
        try:
            yield
        finally:
            async with session.post(url, params={"variable": "HOTLINE_AGI_PORT", "value": port}) as resp:
                assert resp.status == 204


async def test_line_95002_asks_the_hooks_and_a_vip_reaches_the_vip_queue(
        hotline: Hotline, demo_agents: object, agent_events: list[AgentEvent]) -> None:
    call, channel = await call_95002(hotline, VIP_EN)
    connect = await answered_by_agent(agent_events, channel)
    assert connect.queue == "hotline-vip"
    decided = variables(hotline, channel)
    assert decided.get("HOTLINE_SKILL") == "vip"
    assert {k: decided.get(k) for k in ("HOTLINE_IDENTIFY", "HOTLINE_CUSTOMER_ID", "HOTLINE_SEGMENT",
                                        "HOTLINE_LANGUAGE", "HOTLINE_STATUS", "HOTLINE_ROUTE")} == {
        "HOTLINE_IDENTIFY": "ok", "HOTLINE_CUSTOMER_ID": "C003", "HOTLINE_SEGMENT": "vip",
        "HOTLINE_LANGUAGE": "en", "HOTLINE_STATUS": "open", "HOTLINE_ROUTE": "vip"}
    assert "HOTLINE_AGI_ERROR" not in decided
    assert path(hotline, channel) == ["AGI identify", "AGI status", "AGI route", "Playback hotline/en/transfer_agent",
                                      "Playback hotline/en/recording_notice",
                                      "Queue hotline-vip"]
    result = await call
    assert result.ok, result.stderr
    for hook in ("identify", "status", "route"):
        assert hotline.log_has(f"event=agi_request call={channel} hook={hook}")
    # no application ran the call, yet it has a journey: written by the dialplan, imported by serve
    journey = await hotline.dialplan_journey(channel)
    assert {k: journey[k] for k in ("caller", "dnis", "customer_id", "segment", "language", "outcome",
                                    "transfer_target")} == {
        "caller": VIP_EN, "dnis": "95002", "customer_id": "C003", "segment": "vip", "language": "en",
        "outcome": "transferred", "transfer_target": "queue:vip"}
    assert journey["queue"]["group"] == "vip" and journey["queue"]["agent"] == connect.member_name, journey
    assert journey["duration_ms"] > 0 and journey["ended_at"] is not None


async def test_line_95002_without_the_agi_server_reaches_the_general_queue(
        hotline: Hotline, demo_agents: object, agent_events: list[AgentEvent], agi_unreachable: None) -> None:
    call, channel = await call_95002(hotline, VIP_EN)
    connect = await answered_by_agent(agent_events, channel)
    assert connect.queue == "hotline-general-zh"  # the safe default: general, in the default language
    decided = variables(hotline, channel)
    assert "HOTLINE_IDENTIFY" not in decided and "HOTLINE_STATUS" not in decided
    assert decided["HOTLINE_ROUTE"] == "general" and decided["HOTLINE_LANGUAGE"] == "zh"
    assert path(hotline, channel) == ["AGI identify", "AGI status", "AGI route", "Playback hotline/zh/transfer_agent",
                                      "Playback hotline/zh/recording_notice",
                                      "Queue hotline-general-zh"]
    result = await call
    assert result.ok, result.stderr
    assert not hotline.log_has(f"call={channel} hook=")
    journey = await hotline.dialplan_journey(channel)  # nobody identified the caller: no customer
    assert (journey["customer_id"], journey["language"], journey["transfer_target"]) == (None, "zh", "queue:general-zh")


async def test_line_95002_plays_its_emergency_recording_before_the_queue(
        hotline: Hotline, demo_agents: object, agent_events: list[AgentEvent]) -> None:
    switched = hotline.cli("emergency", "on", "--line", LINE, "--sound", "emergency_default")
    assert switched.returncode == 0, switched.stderr
    try:
        call, channel = await call_95002(hotline, VIP_EN)
        await answered_by_agent(agent_events, channel)
        assert variables(hotline, channel)["HOTLINE_STATUS"] == "emergency"
        assert path(hotline, channel) == ["AGI identify", "AGI status", "Playback hotline/en/emergency_default",
                                          "AGI route", "Playback hotline/en/transfer_agent",
                                          "Playback hotline/en/recording_notice", "Queue hotline-vip"]
        result = await call
        assert result.ok, result.stderr
    finally:
        switched_off = hotline.cli("emergency", "off", "--line", LINE)  # whatever failed above is what is raised
    assert switched_off.returncode == 0, switched_off.stdout + switched_off.stderr
