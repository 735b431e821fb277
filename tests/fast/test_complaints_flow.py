"""The `record` node on the real engine (simulated channel), and a whole complaint on the demo menus:
a caller of the fake Asterisk records, hears it back, keeps it, picks a category, and the ticket is
in PostgreSQL with that recording, dispatched to the category's department."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agi_app.admin.simulate import SimulatedChannel
from agi_app.flows.loader import FlowFileError, load_document
from tests.fast.conftest import Hotline, fetch
from tests.fast.flowkit import doc, prepare_flow
from tests.support.demo import KNOWN_ZH, MAIN_ZH

BYE = {"type": "hangup", "prompt": "{{ sound('goodbye') }}"}
FAILED = {"type": "hangup", "prompt": "{{ sound('technical_difficulty') }}"}


def record_node(**overrides: Any) -> dict[str, Any]:
    return {"type": "record", "prompt": "{{ sound('complaint_record') }}",
            "confirm_prompt": "{{ sound('complaint_confirm') }}", "variable": "complaint_recording",
            "timeout": 0.3, "next": "bye", "on_failure": "failed", **overrides}


async def answer_each_playback(channel: SimulatedChannel, keys: str) -> None:
    """The caller presses one of `keys` once each recording has been played back to them."""
    for index, key in enumerate(keys):
        while len([m for m in channel.played if m.startswith("recording:")]) <= index:  # noqa: ASYNC110 - the simulated channel has no event for it
            await asyncio.sleep(0.01)
        if key != " ":  # a space: no answer
            assert channel.session is not None
            channel.session.on_dtmf(key)


async def run_record(keys: str, **overrides: Any) -> tuple[SimulatedChannel, dict[str, Any], list[str]]:
    runner, channel, _ = prepare_flow(doc({"rec": record_node(**overrides), "bye": BYE, "failed": FAILED},
                                          start="rec"))
    caller = asyncio.create_task(answer_each_playback(channel, keys))
    await asyncio.wait_for(runner.run(), 10)
    caller.cancel()
    assert channel.session is not None
    return channel, runner.ctx.variables, channel.session.journey.record.path


async def test_the_message_is_heard_back_and_kept_with_1() -> None:
    channel, variables, path = await run_record("1")
    [name] = channel.recorded
    assert name.startswith("rec-")  # the node's id labels it
    assert variables == {"complaint_recording": name}
    assert channel.played == ["sound:hotline/en/complaint_record", f"recording:{name}",
                              "sound:hotline/en/complaint_confirm", "sound:hotline/en/goodbye"]
    assert path == ["rec", "bye"]


async def test_2_records_again_and_the_second_message_is_kept() -> None:
    channel, variables, _ = await run_record("2 ")  # then no answer: kept
    assert len(channel.recorded) == 2
    assert variables == {"complaint_recording": channel.recorded[1]}


async def test_recording_again_every_time_ends_on_failure() -> None:
    channel, variables, path = await run_record("22", max_attempts=2)
    assert len(channel.recorded) == 2 and variables == {}
    assert path == ["rec", "failed"]


class FailingRecorder(SimulatedChannel):
    async def record(self, name: str, *, max_seconds: int, max_silence_seconds: int) -> None:
        assert self.session is not None
        asyncio.get_running_loop().call_soon(self.session.on_recording_finished, name, None)  # RecordingFailed


class EmptyRecorder(SimulatedChannel):
    async def record(self, name: str, *, max_seconds: int, max_silence_seconds: int) -> None:
        assert self.session is not None
        self.recorded.append(name)
        asyncio.get_running_loop().call_soon(self.session.on_recording_finished, name, 0)  # # at once


@pytest.mark.parametrize("channel_type", [FailingRecorder, EmptyRecorder])
async def test_nothing_recorded_goes_on_failure(channel_type: type[SimulatedChannel]) -> None:
    runner, channel, _ = prepare_flow(doc({"rec": record_node(max_attempts=2), "bye": BYE, "failed": FAILED},
                                          start="rec"))
    session = channel.session
    assert session is not None
    replacement = channel_type(channel.channel_id)
    replacement.session, session.channel = session, replacement
    await asyncio.wait_for(runner.run(), 10)
    assert session.journey.record.path == ["rec", "failed"]
    assert "complaint_recording" not in runner.ctx.variables
    assert not any(m.startswith("recording:") for m in replacement.played)


def test_a_record_node_needs_its_variable_and_sane_limits() -> None:
    for bad in ({"variable": None}, {"max_seconds": 3}, {"max_seconds": 3600}, {"max_silence": -1}):
        node = {k: v for k, v in record_node(**bad).items() if v is not None}
        with pytest.raises(FlowFileError):
            load_document(doc({"rec": node, "bye": BYE, "failed": FAILED}, start="rec"))


async def test_a_caller_leaves_a_complaint_on_the_demo_menus(hotline: Hotline) -> None:
    ari = hotline.ari
    call = await hotline.call(KNOWN_ZH)
    await hotline.heard(call, MAIN_ZH)
    await ari.press(call, "4")
    request = await ari.wait_request("POST", f"/channels/{call}/record")
    name = request.query["name"][0]
    assert hotline.played(call)[-1] == "sound:hotline/zh/complaint_record"  # heard in full before the beep
    await asyncio.sleep(1.1)  # the caller speaks
    await ari.press(call, "#")
    await hotline.heard(call, "sound:hotline/zh/complaint_confirm")
    await ari.press(call, "1")
    await hotline.heard(call, "sound:hotline/zh/complaint_category")
    await ari.press(call, "3")
    await hotline.heard(call, "sound:hotline/zh/complaint_thanks")
    row = await hotline.wait_ended(call)
    assert {"service": "complaint", "result": "ok"} in row["services"]
    assert f"recording:{name}" in hotline.played(call)
    [ticket] = await fetch(hotline.dsn, "SELECT * FROM complaints")
    assert (ticket["call_id"], ticket["customer_id"], ticket["callback_number"], ticket["category"],
            ticket["department"], ticket["status"], ticket["recording"]) == (
        call, "C001", KNOWN_ZH, "card", "card_centre", "dispatched", name)
    assert ari.recordings[name].state == "done"
    dispatches = await fetch(hotline.dsn, "SELECT department FROM complaint_dispatches WHERE ticket_id = $1",
                             ticket["ticket_id"])
    assert [d["department"] for d in dispatches] == ["card_centre"]
    assert ari.violations == []
