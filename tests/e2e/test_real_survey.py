"""End-to-end: the satisfaction survey after an agent call, on the real Asterisk sandbox.

A SIPp caller asks for an agent, a demo agent (SIPp UAS, `demo_agents`) answers through app_queue,
talks and hangs up; the dialplan (hotline-agent-done) puts the caller back into `hotline serve`,
which asks for a score and stores it for the call and that agent.
"""

from __future__ import annotations

import pytest

from agi_app.ami.events import AgentComplete, AgentConnect, AgentEvent
from tests.e2e.conftest import AGENT_TALK_S, Hotline, polled
from tests.support.agents import DemoAgent
from tests.support.sipp import SipCall

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

ZH = "sound:hotline/zh/"


async def test_a_caller_back_from_the_agent_hears_the_survey_and_rates_the_agent(
        hotline: Hotline, demo_agents: dict[str, DemoAgent], agent_events: list[AgentEvent]) -> None:
    caller = "13122223101"
    # "0" for an agent, then "4" every second: while the agent talks the keys go to the agent; once
    # the agent has hung up and the survey asks, the first "4" is the caller's score.
    keys = [(2.0, "0"), *[(1.0, "4")] * 45]
    result = await hotline.call(SipCall(caller, "95000", steps=keys, max_duration=75))
    assert result.ok and result.hangup_by == "remote", result.stderr  # our app hung up after the goodbye
    channel = hotline.observer.channel_by_caller[caller][-1]
    await polled(
        lambda: any(isinstance(e, AgentComplete) and e.unique_id == channel for e in agent_events), 10,
        lambda: f"AgentComplete for {channel}")
    connect = next(e for e in agent_events if isinstance(e, AgentConnect) and e.unique_id == channel)
    complete = next(e for e in agent_events if isinstance(e, AgentComplete) and e.unique_id == channel)
    assert complete.reason == "agent" and complete.talk_time_s >= AGENT_TALK_S - 1  # the agent hung up
    # The dialplan sent the same channel back into the app, naming the call, group and agent.
    stasis = [data for app, data in hotline.observer.dialplan[channel] if app == "Stasis"]
    assert stasis[-1] == f"{hotline.env['HOTLINE_ARI_APP']},survey,{channel},general-zh,{connect.member_name},zh"
    assert hotline.observer.played[channel][-3:] == [ZH + "survey_intro", ZH + "survey_thanks", ZH + "goodbye"]
    row = hotline.last_call(caller)
    assert row["call_id"] == channel and row["outcome"] == "transferred"
    assert row["survey"] == 4
    assert row["surveys"] == [{"kind": "after_agent", "node": "survey", "score": 4, "result": "ok",
                               "no_answer": None, "queue": "general-zh", "agent": connect.member_name}]
