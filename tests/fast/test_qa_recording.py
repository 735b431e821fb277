"""Agent calls are recorded at the bridge: the rendered dialplan tells the caller, then records with
MixMonitor's bridged-only option into the file `qa.recording_name` names, and closes it when the
agent hangs up; the queue tracker stores that name on the leg when app_queue connects an agent.
The real recording is tests/e2e/test_real_qa.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agi_app.centre.qa import recording_name
from tests.fake_ami.pytest_plugin import fake_ami  # noqa: F401  (the fixture)
from tests.fast.flowkit import doc, run_flow
from tests.fast.test_queue_tracker import Tracking, tracking  # noqa: F401  (the fixture)
from tests.support.asterisk_config import rendered

REPO = Path(__file__).resolve().parents[2]
GROUPS = yaml.safe_load((REPO / "config" / "sandbox.yaml").read_text())["queues"]["groups"]
SPOOL = "/var/spool/asterisk/recording"


@pytest.fixture(scope="module")
def dialplan(tmp_path_factory: pytest.TempPathFactory) -> str:
    return (rendered(tmp_path_factory.mktemp("asterisk")) / "extensions.conf").read_text()


def context(dialplan: str, name: str) -> list[str]:
    body = dialplan.split(f"[{name}]\n", 1)[1].split("\n[", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith(";")]


def test_each_group_records_only_the_bridge_into_the_named_file(dialplan: str) -> None:
    assert f"HOTLINE_QA_RECORDINGS={SPOOL}/qa" in context(dialplan, "globals")
    agents = context(dialplan, "hotline-agents")
    for group in GROUPS:
        start = agents.index(f"exten => {group},1,NoOp(Queue for skill group {group})")
        steps = agents[start + 1:start + 10]
        queue = next(i for i, step in enumerate(steps) if step.startswith(f"same => n,Queue(hotline-{group},"))
        monitor = steps[queue - 1]
        assert monitor == f"same => n,MixMonitor(${{HOTLINE_QA_RECORDINGS}}/${{UNIQUEID}}-{group}.wav,b)"
        # the same file name as the one the tracker stores, for any call id
        written = monitor.split("(", 1)[1].split(",")[0].replace("${HOTLINE_QA_RECORDINGS}", f"{SPOOL}/qa")
        assert written.replace("${UNIQUEID}", "1732000000.7") == f"{SPOOL}/{recording_name('1732000000.7', group)}.wav"
    done = context(dialplan, "hotline-agent-done")
    assert done[1] == "same => n,StopMixMonitor()", "closed before the survey or the goodbye"
    callback = "\n".join(context(dialplan, "hotline-callback"))
    assert "MixMonitor" not in callback, "a customer called back was never told: not recorded"


def test_every_dialplan_way_into_the_queues_tells_the_caller_first(dialplan: str) -> None:
    """The fallback and line 95002 reach hotline-agents by Goto: each says the notice just before
    (the app's own transfers say it with their prompt: tests/fast/test_queue_announcement.py)."""
    lines = [line.split(";")[0].strip() for line in dialplan.splitlines()]
    gotos = [i for i, line in enumerate(lines) if "Goto(hotline-agents," in line]
    assert len(gotos) == 2
    for i in gotos:
        assert lines[i - 1] == "same => n,Playback(hotline/${HOTLINE_LANGUAGE}/recording_notice)", lines[i - 2:i + 1]


async def test_the_tracker_stores_the_recording_when_an_agent_answers(tracking: Tracking) -> None:  # noqa: F811
    call = "1732000000.8"
    tracking.push("QueueCallerJoin", call, Position=1, Count=1)
    waiting = await tracking.leg(call, "waiting")
    assert waiting["recording"] is None, "nothing is recorded while the caller waits"
    tracking.push("AgentConnect", call, MemberName="agent-1001", Interface="PJSIP/agent-1001", HoldTime=3)
    answered = await tracking.leg(call, "answered")
    assert answered["recording"] == "qa/1732000000.8-general-zh"
    tracking.push("AgentComplete", call, MemberName="agent-1001", HoldTime=3, TalkTime=20, Reason="agent")
    assert (await tracking.leg(call, "completed"))["recording"] == "qa/1732000000.8-general-zh"
    abandoned = "1732000000.9"
    tracking.push("QueueCallerJoin", abandoned, Position=1, Count=1)
    tracking.push("QueueCallerAbandon", abandoned, Position=1, OriginalPosition=1, HoldTime=9)
    assert (await tracking.leg(abandoned, "abandoned"))["recording"] is None


@pytest.mark.parametrize(("destination", "told"), [
    ({"queue": "cards"}, True),  # a queue destination
    ({"context": "hotline-agents", "extension": "risk"}, True),  # a fixed place among the agent queues
    ({"context": "from-operator", "extension": "100"}, False),  # elsewhere: not recorded, nothing to say
])
async def test_a_transfer_into_the_agent_queues_ends_its_prompt_with_the_notice(destination: dict[str, str],
                                                                                told: bool) -> None:
    document = doc({"t": {"type": "transfer", "prompt": "{{ sound('transfer_agent') }}", "destination": "there"}},
                   start="t", destinations={"general": {"queue": "general-en"}, "there": destination})
    _, channel, _, _ = await run_flow(document)
    assert channel.played == ["sound:hotline/en/transfer_agent", *(["sound:hotline/en/recording_notice"] if told else [])]
