"""What callers are told about their wait, on real calls: the announcement a caller hears with
callers queued ahead, and the estimate measured against the waits app_queue reports — ours beside
Asterisk's announce-holdtime figure, over the same traffic.

Demo agents talk known times here (`talk_times` swaps the session's agents for the same endpoints
talking longer); agents not under test are paused in the group. The callers have international
numbers, which are never offered a callback: every caller goes through the same announcement and
straight into the queue, so only the estimate differs.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from agi_app.ami.client import AmiClient
from agi_app.ami.events import AgentConnect, AgentEvent
from agi_app.ami.queues import AmiQueueState
from agi_app.config import Settings
from agi_app.flows.queueing import QueueAdvice, announcement
from agi_app.media.items import Sound
from tests.e2e.conftest import RUN, Hotline, _agents_cli, polled
from tests.support.agents import DemoAgent, load_agents, talk_times
from tests.support.sipp import SipCall, SipResult, place_call

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

RESULTS = RUN / "results" / "wait-estimate.json"
#: Seconds an agent has after each call before app_queue offers the next (config/sandbox.yaml queues.wrapup_s).
WRAPUP_S = 2


@asynccontextmanager
async def desk(hotline: Hotline, agents: dict[str, DemoAgent], group: str,
               talk_s: dict[str, float]) -> AsyncIterator[None]:
    """`group` answered only by the agents of `talk_s`, each talking its time; the group's other
    members paused there meanwhile."""
    others = [s.endpoint for s in load_agents() if group in s.groups and s.endpoint not in talk_s]
    async with talk_times(agents, talk_s):
        try:
            for endpoint in others:
                done = _agents_cli(hotline.env, "pause", endpoint, f"--queue={group}", "--reason=wait-estimate test")
                assert done.returncode == 0, done.stdout + done.stderr
            await _ready(hotline, group, set(talk_s))
            yield
        finally:
            for endpoint in others:
                _agents_cli(hotline.env, "unpause", endpoint, f"--queue={group}")


async def _ready(hotline: Hotline, group: str, endpoints: set[str], timeout: float = 30) -> None:
    """Wait until app_queue sees each swapped agent registered again and free in `group`: an agent
    re-registering is `unavailable` for a moment, and a caller arriving then finds the queue empty."""
    deadline = time.monotonic() + timeout
    while True:
        done = _agents_cli(hotline.env, "list", "--json")
        rows = json.loads(done.stdout) if done.returncode == 0 else []
        free = {r["agent"] for r in rows if r["group"] == group and not r["paused"] and not r["in_call"]
                and r["status"] in ("available", "not_in_use", "unknown")}
        if endpoints <= free:
            return
        assert time.monotonic() < deadline, f"agents {sorted(endpoints - free)} not free in {group}: {rows}"
        await asyncio.sleep(0.5)


#: What a caller asking for an agent hears first; the desk reads the queue while it plays.
TRANSFER_PROMPT = "sound:hotline/zh/transfer_agent"


async def _channel(hotline: Hotline, caller: str, timeout: float = 10) -> str:
    """The ARI channel id of `caller`'s call (numbers are unique per test, so the first one)."""
    await hotline.observer.until(lambda: bool(hotline.observer.channel_by_caller.get(caller)), timeout,
                                 lambda: f"a channel from {caller}")
    return hotline.observer.channel_by_caller[caller][0]


def _transfer_prompts(hotline: Hotline, channel: str) -> list[str]:
    """ARI timestamps of the transfer prompt starting on `channel`."""
    return [e["timestamp"] for e in hotline.observer.events if e.get("type") == "PlaybackStarted"
            and e["playback"]["target_uri"] == f"channel:{channel}" and e["playback"]["media_uri"] == TRANSFER_PROMPT]


async def _estimated(hotline: Hotline, channel: str, timeout: float = 15) -> datetime:
    """When `channel`'s caller was estimated: its transfer prompt's start."""
    await hotline.observer.until(lambda: bool(_transfer_prompts(hotline, channel)), timeout,
                                 lambda: f"the transfer prompt on {channel}")
    return datetime.strptime(_transfer_prompts(hotline, channel)[0], "%Y-%m-%dT%H:%M:%S.%f%z")


async def _hang_up(hotline: Hotline, channel: str) -> None:
    """Hang `channel` up through ARI, as a caller giving up would."""
    env = hotline.env
    auth = aiohttp.encode_basic_auth(env["HOTLINE_ARI_USER"], env["HOTLINE_ARI_PASSWORD"])
    async with aiohttp.ClientSession(headers={"Authorization": auth}, timeout=aiohttp.ClientTimeout(total=5)) as http:
        async with http.delete(env["HOTLINE_ARI_URL"].rstrip("/") + f"/ari/channels/{channel}") as resp:
            assert resp.status in (204, 404), resp.status  # 404: it had ended already


async def _legs(hotline: Hotline, group: str, channels: Sequence[str], *, complete: bool,
                timeout: float = 15) -> dict[str, asyncpg.Record]:
    """`channels`' queue legs in `group` once each has what we told the caller (and, `complete`,
    what happened: app_queue's wait and talk, from the queue tracker)."""
    rows: dict[str, asyncpg.Record] = {}
    conn = await asyncpg.connect(hotline.env["HOTLINE_DSN"])
    try:
        async with asyncio.timeout(timeout):
            while True:
                rows = {row["call_id"]: row for row in await conn.fetch(
                    "SELECT * FROM queue_legs WHERE queue = $1 AND call_id = ANY($2::text[])", group, list(channels))}
                if len(rows) == len(channels) and all(
                        r["announced_position"] is not None and (not complete or r["result"] == "completed")
                        for r in rows.values()):
                    return rows
                await asyncio.sleep(0.3)
    except TimeoutError:
        raise AssertionError(f"queue legs of {group} not recorded within {timeout} s: {rows}") from None
    finally:
        await conn.close()


def _said(advice: QueueAdvice) -> list[str]:
    """The URIs of the position and wait announcement for `advice`, in Mandarin."""
    return [item.uri for item in announcement(advice, "zh") if isinstance(item, Sound)]


def _contains(heard: list[str], part: list[str]) -> bool:
    return any(heard[i:i + len(part)] == part for i in range(len(heard) - len(part) + 1))


#: The single agent's talk time: the second and third callers, placed one after the other once the
#: first is connected, are estimated within a few seconds, while the agent still talks to the first.
ANNOUNCE_TALK_S = 10.0


async def test_with_two_callers_queued_the_third_hears_one_ahead_and_a_longer_wait(
        hotline: Hotline, demo_agents: dict[str, DemoAgent], agent_events: list[AgentEvent]) -> None:
    group, agent = "general-zh", "agent-1002"
    a, b, c = "+85261234001", "+85261234002", "+85261234003"
    to_agent = [(1.0, "0")]
    calls: dict[str, asyncio.Task[SipResult]] = {}
    async with desk(hotline, demo_agents, group, {agent: ANNOUNCE_TALK_S}):
        try:
            calls[a] = asyncio.create_task(hotline.call(SipCall(a, "95000", steps=to_agent, max_duration=60)))
            ch_a = await _channel(hotline, a)
            # An AMI event: polled, for the ARI observer hears nothing more while A talks to the agent.
            await polled(lambda: any(isinstance(e, AgentConnect) and e.unique_id == ch_a for e in agent_events), 30,
                          lambda: f"the agent taking {a}: AMI said {[e for e in agent_events if e.unique_id == ch_a]}; "
                                  f"{a} heard {hotline.observer.played[ch_a]}")
            calls[b] = asyncio.create_task(hotline.call(SipCall(b, "95000", steps=to_agent, max_duration=60)))
            ch_b = await _channel(hotline, b)
            await _estimated(hotline, ch_b)  # B is on its way into the queue: ahead of C from now
            calls[c] = asyncio.create_task(hotline.call(SipCall(c, "95000", steps=to_agent, max_duration=60)))
            ch_c = await _channel(hotline, c)
            legs = await _legs(hotline, group, [ch_a, ch_b, ch_c], complete=False, timeout=40)
        finally:  # B and C give up (A's agent ends A's call); nothing outlives the test
            for caller, call in calls.items():
                if not call.done() and hotline.observer.channel_by_caller.get(caller):
                    await _hang_up(hotline, hotline.observer.channel_by_caller[caller][0])
            results = await asyncio.gather(*calls.values(), return_exceptions=True)
    assert all(isinstance(r, SipResult) and r.ok for r in results), results
    # A: the agent was free. Nothing said, the leg keeps position 1 and our estimate 0.
    assert (legs[ch_a]["announced_position"], legs[ch_a]["announced_wait_s"]) == (1, 0)
    assert not any("queue_" in uri or "estimated_wait" in uri for uri in hotline.observer.played[ch_a])
    # B: next in line behind A's call in progress; C: one caller (B) ahead, and a longer wait.
    told_b = QueueAdvice(legs[ch_b]["announced_position"], legs[ch_b]["announced_wait_s"])
    told_c = QueueAdvice(legs[ch_c]["announced_position"], legs[ch_c]["announced_wait_s"])
    assert (told_b.position, told_c.position) == (1, 2), "B on its way and A still talking when C was estimated"
    assert told_b.wait_s is not None and told_c.wait_s is not None and 0 < told_b.wait_s < told_c.wait_s
    assert _contains(hotline.observer.played[ch_b], _said(told_b))
    assert _contains(hotline.observer.played[ch_c], _said(told_c))
    assert _said(told_c)[:3] == ["sound:hotline/zh/queue_position_before", "sound:hotline/zh/digits/1",
                                 "sound:hotline/zh/queue_position_after"]
    assert _said(told_b)[0] == "sound:hotline/zh/queue_next"
    # Asterisk's figure was recorded beside ours for every leg.
    assert all(legs[ch]["asterisk_wait_s"] is not None for ch in (ch_a, ch_b, ch_c))


#: The measured desk: two agents with known, different talk times, in a group only they answer.
MEASURED_GROUP = "cards"
MEASURED_TALK_S = {"agent-1002": 6.0, "agent-1006": 9.0}
#: "3" in the general main menu: card and bill questions, the cards queue.
TO_CARDS = [(1.0, "3")]
MEASURED_CALLERS = 10
ARRIVAL_S = 2.0  # between two callers' arrivals: faster than the two agents answer, so a queue forms


async def _reset_queue_stats(hotline: Hotline, queue: str) -> None:
    """app_queue's statistics back to a fresh queue's (holdtime, talk time, counts 0): Asterisk's
    estimate starts where it would for a new queue, whatever ran before in this Asterisk."""
    async with AmiClient.from_settings(Settings.load(hotline.env)) as ami:
        await ami.action("QueueReset", {"Queue": queue})


async def _asterisk_holdtime(hotline: Hotline, group: str) -> int:
    """app_queue's holdtime for `group` now (what announce-holdtime would say next)."""
    async with AmiClient.from_settings(Settings.load(hotline.env)) as ami:
        return (await AmiQueueState(ami).snapshot(group)).asterisk_holdtime_s


async def _call_the_desk(hotline: Hotline, caller: str, delay: float) -> SipResult:
    """One caller, after `delay`, to the cards desk, staying on until Asterisk hangs up."""
    await asyncio.sleep(delay)
    return await place_call(SipCall(caller, "95000", steps=TO_CARDS, max_duration=150))


def _mae(pairs: Sequence[tuple[int, int]]) -> float:
    return statistics.mean(abs(told - actual) for told, actual in pairs)


async def test_announced_against_actual_waits_ours_and_asterisks(
        hotline: Hotline, demo_agents: dict[str, DemoAgent]) -> None:
    """Prints (and writes to .run/results/wait-estimate.json) the mean absolute error of the
    announced wait against app_queue's actual wait, ours and Asterisk's, over the same callers.
    Which is better is reported, not asserted: timings belong in the report, not in a pass/fail."""
    group = MEASURED_GROUP
    async with desk(hotline, demo_agents, group, MEASURED_TALK_S):
        started = time.monotonic()
        await _reset_queue_stats(hotline, f"hotline-{group}")
        calls: dict[str, asyncio.Task[SipResult]] = {}
        try:
            # Warm-up: one call per agent at once (nobody waits): both estimators see the same history —
            # app_queue learns a talk time (its holdtime stays 0), our legs two handle times.
            for n in range(2):
                calls[f"+8526123410{n}"] = asyncio.create_task(_call_the_desk(hotline, f"+8526123410{n}", 0))
            warm = [await _channel(hotline, caller) for caller in calls]
            await _legs(hotline, group, warm, complete=True, timeout=60)
            warmed = time.monotonic()
            measured = [f"+852612342{n:02d}" for n in range(MEASURED_CALLERS)]
            for n, caller in enumerate(measured):
                calls[caller] = asyncio.create_task(_call_the_desk(hotline, caller, n * ARRIVAL_S))
            channels = [await _channel(hotline, caller, timeout=ARRIVAL_S * MEASURED_CALLERS + 10) for caller in measured]
            estimated = {channel: await _estimated(hotline, channel) for channel in channels}
            legs = await _legs(hotline, group, channels, complete=True, timeout=150)
            phases = {"warm_up_s": round(warmed - started, 1), "measured_s": round(time.monotonic() - warmed, 1)}
            holdtime_after = await _asterisk_holdtime(hotline, group)
        finally:  # the agents have ended every call: callers still hearing the survey hang up now
            for caller, call in calls.items():
                if not call.done() and hotline.observer.channel_by_caller.get(caller):
                    await _hang_up(hotline, hotline.observer.channel_by_caller[caller][0])
            results = await asyncio.gather(*calls.values(), return_exceptions=True)
    assert all(isinstance(r, SipResult) and r.ok and r.hangup_by == "remote" for r in results), results
    rows = [legs[c] for c in channels]
    # Seconds from the estimate to joining app_queue (the transfer prompt, and the announcement if
    # any): app_queue's wait starts only then, while the estimate counted from the moment it was taken.
    leads = [(r["joined_at"] - estimated[c]).total_seconds() for c, r in zip(channels, rows, strict=True)]
    assert all(r["wait_s"] is not None and r["announced_wait_s"] is not None and r["asterisk_wait_s"] is not None
               for r in rows), "every leg: an actual wait and both estimates"
    ours = [(r["announced_wait_s"], r["wait_s"]) for r in rows]
    asterisk = [(r["asterisk_wait_s"], r["wait_s"]) for r in rows]
    report: dict[str, Any] = {
        "group": group, "agents_talk_s": MEASURED_TALK_S, "wrapup_s": WRAPUP_S, "callers": len(rows),
        "arrival_s": ARRIVAL_S, "mae_ours_s": round(_mae(ours), 2), "mae_asterisk_s": round(_mae(asterisk), 2),
        "bias_ours_s": round(statistics.mean(t - a for t, a in ours), 2),
        "bias_asterisk_s": round(statistics.mean(t - a for t, a in asterisk), 2),
        "asterisk_holdtime_after_s": holdtime_after, **phases,
        "mean_lead_s": round(statistics.mean(leads), 2),
        # What ours would have scored counting from the caller's joining: the prompts' time left out.
        "mae_ours_from_join_s": round(_mae([(max(0, round(t - lead)), a) for (t, a), lead in zip(ours, leads,
                                                                                                strict=True)]), 2),
        "legs": [{"position": r["announced_position"], "actual_s": r["wait_s"], "ours_s": r["announced_wait_s"],
                  "asterisk_s": r["asterisk_wait_s"], "lead_s": round(lead, 1), "agent": r["agent"],
                  "talk_s": r["talk_s"]} for r, lead in zip(rows, leads, strict=True)],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwait estimate, {len(rows)} callers, {group} answered by {MEASURED_TALK_S} s talkers + {WRAPUP_S} s"
          f" wrap-up: mean absolute error ours {report['mae_ours_s']} s (bias {report['bias_ours_s']:+}),"
          f" Asterisk announce-holdtime {report['mae_asterisk_s']} s (bias {report['bias_asterisk_s']:+});"
          f" {report['mean_lead_s']} s from the estimate to joining the queue on average (ours less that:"
          f" {report['mae_ours_from_join_s']} s); Asterisk's holdtime after the run {holdtime_after} s; {phases}")
    for leg in report["legs"]:
        print(f"  position {leg['position']}: actual {leg['actual_s']} s, ours {leg['ours_s']} s,"
              f" Asterisk {leg['asterisk_s']} s, joined {leg['lead_s']} s after the estimate"
              f" ({leg['agent']}, talked {leg['talk_s']} s)")
    assert len(ours) == len(asterisk) == MEASURED_CALLERS, "both errors over the same legs"
