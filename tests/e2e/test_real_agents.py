"""Real calls reaching real (demo) agents: a transfer from the IVR, the dialplan's fallback while
`hotline serve` is stopped, and calls placed while it restarts.

The agents are SIPp UAS processes registered as PJSIP endpoints agent-<id> and logged in with
`hotline agents login` (the `demo_agents` fixture); AMI's agent events say which member answered
which caller channel and who hung up; the observer says what each channel played, through ARI
(the app's prompts) or in the dialplan (Playback steps of the fallback and the queue contexts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from agi_app.ami.events import AgentComplete, AgentConnect, AgentEvent
from tests.e2e.conftest import AGENT_TALK_S, Hotline, polled
from tests.support.agents import DemoAgent
from tests.support.sipp import SipCall, SipResult

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

APOLOGY = ("Playback", "hotline/zh/fallback_apology")
#: "0" for an agent in the IVR (the fallback ignores it), then a survey score every 2 s: keys while
#: waiting or talking change nothing, and the survey after the agent is answered, not waited out.
AGENT_THEN_SURVEY = [(4.0, "0"), *[(2.0, "5")] * 15]


def _agent_leg(events: list[AgentEvent], channel: str) -> tuple[AgentConnect, AgentComplete]:
    """The one agent who took caller channel `channel`, and how that call ended."""
    connects = [e for e in events if isinstance(e, AgentConnect) and e.unique_id == channel]
    completes = [e for e in events if isinstance(e, AgentComplete) and e.unique_id == channel]
    assert len(connects) == 1 and len(completes) == 1, f"agent events for {channel}: {connects} {completes}"
    return connects[0], completes[0]


def _newest_channel(hotline: Hotline, interface: str) -> str:
    """The id of the newest channel of `interface` (e.g. PJSIP/agent-1001 makes PJSIP/agent-1001-0000002a)."""
    ids = [e["channel"]["id"] for e in hotline.observer.events
           if e.get("type") == "ChannelCreated" and e["channel"]["name"].startswith(interface + "-")]
    assert ids, f"no channel of {interface}"
    return str(ids[-1])


def _bridges(hotline: Hotline, channel: str) -> set[str]:
    return {e["bridge"]["id"] for e in hotline.observer.events
            if e.get("type") == "ChannelEnteredBridge" and e["channel"]["id"] == channel}


def _rtp_counts(hotline: Hotline, channel: str) -> dict[str, int]:
    """Packets Asterisk received from (rx) and sent to (tx) the channel's far end (RTPAUDIOQOS at hangup)."""
    qos = [e["value"] for e in hotline.observer.events if e.get("type") == "ChannelVarset"
           and e.get("variable") == "RTPAUDIOQOS" and e.get("channel", {}).get("id") == channel]
    assert qos, f"no RTPAUDIOQOS for {channel}"
    fields = dict(part.split("=", 1) for part in qos[-1].split(";") if "=" in part)
    return {"rx": int(float(fields["rxcount"])), "tx": int(float(fields["txcount"]))}


async def _ended(hotline: Hotline, events: list[AgentEvent], channels: list[str], timeout: float = 10) -> None:
    """AMI's AgentComplete may trail the caller's hangup by a moment."""
    await polled(lambda: all(any(isinstance(e, AgentComplete) and e.unique_id == c for e in events)
                                             for c in channels), timeout, lambda: f"AgentComplete for {channels}")


async def test_a_transferred_caller_talks_to_a_demo_agent_who_ends_the_call(
        hotline: Hotline, demo_agents: dict[str, DemoAgent], agent_events: list[AgentEvent]) -> None:
    caller = "13122223001"
    answered = {name: len(agent.answered) for name, agent in demo_agents.items()}
    # "0" for an agent, then a key every second: what the caller sends while talking to the agent
    # (and, once the agent has hung up, the survey's answer instead of waiting out its timeout).
    keys = [(2.0, "0"), *[(1.0, "5")] * 25]
    result = await hotline.call(SipCall(caller, "95000", steps=keys, max_duration=60))
    assert result.ok and result.hangup_by == "remote", result.stderr
    assert hotline.last_call(caller)["outcome"] == "transferred"
    channel = hotline.observer.channel_by_caller[caller][-1]
    await _ended(hotline, agent_events, [channel])
    connect, complete = _agent_leg(agent_events, channel)
    # A registered SIP endpoint answered through the general Mandarin queue, not a dialplan stand-in.
    assert connect.queue == "hotline-general-zh" and connect.interface.startswith("PJSIP/agent-")
    endpoint = connect.interface.removeprefix("PJSIP/")
    agent = demo_agents[endpoint]
    assert len(agent.answered) == answered[endpoint] + 1, "the demo agent's own log shows the call"
    # The agent ended the call after talking; the caller went back into the app for the survey
    # (tests/e2e/test_real_survey.py), which says goodbye and hangs up.
    assert complete.reason == "agent" and complete.talk_time_s >= AGENT_TALK_S - 1
    assert agent.hung_up[-1] == agent.answered[-1]
    steps = hotline.observer.dialplan[channel]
    assert ("Set", "HOTLINE_AGENT_DONE=1") in steps and steps[-1][0] == "Stasis" and ",survey," in steps[-1][1]
    # Caller and agent in one bridge, media both ways: the agent's talk (a tone, 50 packets a second)
    # reached Asterisk, and the caller's keys pressed during the talk reached the agent.
    agent_channel = _newest_channel(hotline, connect.interface)
    assert _bridges(hotline, channel) & _bridges(hotline, agent_channel)
    rtp = _rtp_counts(hotline, agent_channel)
    assert rtp["rx"] >= 25 * AGENT_TALK_S and rtp["tx"] > 0, rtp


@contextlib.asynccontextmanager
async def _app_handing_calls_back(env: dict[str, str]) -> AsyncIterator[None]:
    """An ARI application under the hotline's name that lets every call go on in the dialplan without
    a destination (continue without context): what a faulty or dying app may do."""
    auth = aiohttp.encode_basic_auth(env["HOTLINE_ARI_USER"], env["HOTLINE_ARI_PASSWORD"])
    base = env["HOTLINE_ARI_URL"].rstrip("/") + "/ari"
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session, \
            session.ws_connect(base + "/events", params={"app": env["HOTLINE_ARI_APP"]}) as ws:

        async def hand_back() -> None:
            async for message in ws:
                event = json.loads(message.data)
                if event.get("type") == "StasisStart":
                    async with session.post(f"{base}/channels/{event['channel']['id']}/continue") as resp:
                        assert resp.status == 204, await resp.text()

        task = asyncio.create_task(hand_back())
        try:
            yield
        finally:
            task.cancel()


async def test_without_the_app_callers_hear_our_apology_and_reach_an_agent(
        hotline: Hotline, demo_agents: dict[str, DemoAgent], agent_events: list[AgentEvent]) -> None:
    """`hotline serve` stopped (Stasis fails: app-down), then an app that hands calls back without a
    destination (handed-back): both callers hear our apology and reach an agent, concurrently."""
    down, handed_back = "13122223002", "13122223003"
    observer = hotline.observer

    def apologised(caller: str) -> bool:
        return any(APOLOGY in observer.dialplan[channel] for channel in observer.channel_by_caller.get(caller, []))

    assert await hotline.stop_serve() == 0
    try:
        first = asyncio.create_task(hotline.call(SipCall(down, "95000", max_duration=60)))
        await observer.until(lambda: apologised(down), 15, lambda: f"the apology for {down}")
        async with _app_handing_calls_back(hotline.env):
            second = await hotline.call(SipCall(handed_back, "95000", max_duration=60))
        results = {down: await first, handed_back: second}
    finally:
        await hotline.start_serve()
    channels = {caller: observer.channel_by_caller[caller][-1] for caller in results}
    await _ended(hotline, agent_events, list(channels.values()))
    for caller, reason in ((down, "app-down (STASISSTATUS=FAILED)"), (handed_back, "handed-back (STASISSTATUS=SUCCESS)")):
        assert results[caller].ok and results[caller].hangup_by == "remote", results[caller].stderr
        steps = observer.dialplan[channels[caller]]
        assert ("NoOp", f"Hotline fallback: {reason}") in steps, steps
        assert steps.index(APOLOGY) < steps.index(("Queue", "hotline-general-zh,c,,,120")), steps
        connect, complete = _agent_leg(agent_events, channels[caller])
        assert connect.interface.startswith("PJSIP/agent-") and complete.reason == "agent", caller
    assert not observer.played[channels[down]], "the app took no part"
    # The caller who found no app has a journey all the same: the dialplan wrote it when they hung
    # up, and the restarted server imported it.
    journey = await hotline.dialplan_journey(channels[down])
    assert {k: journey[k] for k in ("caller", "dnis", "outcome", "transfer_target", "path")} == {
        "caller": down, "dnis": "95000", "outcome": "transferred", "transfer_target": "fallback:app-down", "path": []}
    assert journey["queue"]["group"] == "general-zh" and journey["queue"]["agent"].startswith("agent-"), journey


async def test_calls_placed_while_serve_restarts_all_reach_a_prompt_and_an_agent(
        hotline: Hotline, demo_agents: dict[str, DemoAgent], agent_events: list[AgentEvent]) -> None:
    calls: list[tuple[str, asyncio.Task[SipResult]]] = []
    restarted = asyncio.Event()

    async def dial_every(seconds: float) -> None:
        """One caller every `seconds` from before the stop until just after the new server is up."""
        n = 0
        while True:
            n += 1
            caller = f"131222240{n:02d}"
            calls.append((caller, asyncio.create_task(
                hotline.call(SipCall(caller, "95000", steps=AGENT_THEN_SURVEY, max_duration=90)))))
            if restarted.is_set():
                return
            await asyncio.sleep(seconds)

    dialler = asyncio.create_task(dial_every(2.0))
    try:
        await asyncio.sleep(1.2)
        started = time.monotonic()
        assert await hotline.stop_serve() == 0, "a graceful stop with calls in progress"
        await hotline.start_serve()
        restarted.set()
        await dialler
        window = time.monotonic() - started
        results = [(caller, await task) for caller, task in calls]
    finally:
        dialler.cancel()
        for _, task in calls:
            task.cancel()
    channels = []
    for caller, result in results:
        assert result.ok and result.hangup_by == "remote", f"{caller}: {result.stderr}"
        channels.append(hotline.observer.channel_by_caller[caller][-1])
    await _ended(hotline, agent_events, channels, timeout=20)
    by_app = by_fallback = 0
    for (caller, _), channel in zip(results, channels, strict=True):
        heard_app, apologised = bool(hotline.observer.played[channel]), APOLOGY in hotline.observer.dialplan[channel]
        assert heard_app or apologised, f"{caller} heard nothing before the queue"
        by_app, by_fallback = by_app + heard_app, by_fallback + apologised
        connect, complete = _agent_leg(agent_events, channel)
        assert connect.interface.startswith("PJSIP/agent-") and complete.reason == "agent", caller
    # The window really was crossed: some callers met the stopped app's fallback, some the app.
    assert by_fallback >= 1 and by_app >= 1, (by_app, by_fallback, len(results), f"{window:.1f}s")
