"""End-to-end: a real agent call is recorded for quality inspection, and only its talk with the agent.

A SIPp caller asks for an agent; the dialplan tells them the call may be recorded and app_queue
connects a demo agent (SIPp UAS playing a tone for AGENT_TALK_S, then hanging up). The recording
Asterisk wrote is a WAV as long as the talk — not the call, whose IVR, announcement, hold and survey
stay out of it — with the agent's voice in it; `hotline qa sample` lists the call with that file.
"""

from __future__ import annotations

import asyncio
import json
import struct
import wave
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agi_app.ami.events import AgentComplete, AgentConnect, AgentEvent
from agi_app.db.pool import connection
from tests.e2e.conftest import AGENT_TALK_S, Hotline, polled
from tests.support.agents import DemoAgent
from tests.support.sipp import SipCall

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

CALLER = "13122223102"
ZH = "sound:hotline/zh/"
GROUP = "general-zh"


def wav_audio(path: Path) -> tuple[float, int]:
    """A 16-bit WAV's length in seconds and its loudest sample."""
    with wave.open(str(path)) as recorded:
        assert recorded.getsampwidth() == 2, "16-bit samples"
        frames = recorded.readframes(recorded.getnframes())
        seconds = recorded.getnframes() / recorded.getframerate()
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    return seconds, max(map(abs, samples), default=0)


async def leg_with_recording(dsn: str, call_id: str) -> dict[str, Any]:
    for _ in range(100):
        async with connection(dsn) as conn:
            row = await conn.fetchrow("SELECT * FROM queue_legs WHERE call_id = $1 AND queue = $2", call_id, GROUP)
        if row is not None and row["recording"] and row["result"] == "completed":
            return dict(row)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no completed, recorded leg for {call_id}: {row}")


async def test_an_agent_call_is_recorded_from_the_bridge_and_sampled(
        hotline: Hotline, demo_agents: dict[str, DemoAgent], agent_events: list[AgentEvent]) -> None:
    # "0" over the greeting: an agent. No survey answer: the survey times out and the app hangs up.
    result = await hotline.call(SipCall(CALLER, "95000", steps=[(2.0, "0")], max_duration=75))
    assert result.ok and result.hangup_by == "remote", result.stderr
    channel = hotline.observer.channel_by_caller[CALLER][-1]
    await polled(
        lambda: any(isinstance(e, AgentComplete) and e.unique_id == channel for e in agent_events), 10,
        lambda: f"AgentComplete for {channel}")
    connect = next(e for e in agent_events if isinstance(e, AgentConnect) and e.unique_id == channel)
    complete = next(e for e in agent_events if isinstance(e, AgentComplete) and e.unique_id == channel)
    assert complete.reason == "agent"
    # Told before the transfer (the app, with its transfer prompt); then the dialplan started the
    # recording right before the queue.
    played = hotline.observer.played[channel]
    assert ZH + "recording_notice" in played, played
    assert played.index(ZH + "recording_notice") == played.index(ZH + "transfer_agent") + 1, played
    steps = hotline.observer.dialplan[channel]
    stasis = next(i for i, (app, _) in enumerate(steps) if app == "Stasis")
    monitor = next(i for i, (app, _) in enumerate(steps) if app == "MixMonitor")
    queue = next(i for i, (app, _) in enumerate(steps) if app == "Queue")
    assert stasis < monitor < queue, steps
    assert steps[monitor][1].endswith(f"/qa/{channel}-{GROUP}.wav,b"), steps[monitor]

    leg = await leg_with_recording(hotline.env["HOTLINE_DSN"], channel)
    assert leg["recording"] == f"qa/{channel}-{GROUP}" and leg["agent"] == connect.member_name
    path = Path(hotline.env["HOTLINE_RECORDINGS_DIR"]) / f"{leg['recording']}.wav"
    for _ in range(50):  # MixMonitor closes the file in its own thread after StopMixMonitor
        if path.exists() and path.stat().st_size > 44:
            break
        await asyncio.sleep(0.1)
    seconds, loudest = await asyncio.to_thread(wav_audio, path)
    talk = complete.talk_time_s
    assert abs(seconds - talk) <= 1.5 and abs(seconds - AGENT_TALK_S) <= 1.5, \
        f"{path}: {seconds:.2f} s recorded, {talk} s talked"
    assert result.duration - seconds >= 8, \
        f"the call ran {result.duration:.1f} s: IVR, notice, hold and survey must not be in the {seconds:.1f} s file"
    assert loudest > 1000, f"{path}: silence (peak {loudest}), the agent's tone is missing"

    month = leg["answered_at"].astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    sampled = hotline.cli("qa", "sample", "--month", month, "--per-agent", "1000", "--json")
    assert sampled.returncode == 0, sampled.stderr
    listed = next(r for r in json.loads(sampled.stdout) if r["call_id"] == channel)
    assert (listed["agent"], listed["queue"], Path(listed["recording"])) == (connect.member_name, GROUP, path)
