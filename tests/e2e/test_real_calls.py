"""Real SIP calls into a real Asterisk, answered by `hotline serve`."""

from __future__ import annotations

import pytest

from agi_app.sandbox.sipp import SipCall
from tests.e2e.conftest import Hotline

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

KNOWN_ZH = "13800138000"  # C001 王伟 (standard, zh)
VIP_EN = "13700137000"  # C003 John Smith (vip, en)


async def test_known_customer_chooses_an_option(hotline: Hotline) -> None:
    # "1" during the greeting (type-ahead) → announcement; "2" during it → card services queue.
    result = await hotline.call(SipCall(KNOWN_ZH, "95000", steps=[(3.0, "1"), (2.0, "2")], max_duration=60))
    assert result.ok, result.stderr
    row = hotline.last_call(KNOWN_ZH)
    assert row["customer_id"] == "C001" and row["segment"] == "standard"
    assert row["path"] == ["greeting", "main", "accounts_info", "main", "cards"]
    assert row["outcome"] == "transferred" and row["transfer_target"] == "cards"
    heard = hotline.observer.heard(KNOWN_ZH)
    assert heard[0].startswith("sound:hotline-tts/"), "greeted by name (generated speech)"
    assert "sound:hotline/zh/announcement_rates" in heard


async def test_unknown_caller_reaches_an_agent(hotline: Hotline) -> None:
    caller = "13122220001"
    result = await hotline.call(SipCall(caller, "95000", steps=[(2.0, "0")], max_duration=60))
    assert result.ok and result.hangup_by == "remote", result.stderr
    row = hotline.last_call(caller)
    assert row["customer_id"] is None and row["outcome"] == "transferred"
    assert row["transfer_target"] == "general"
    assert not any(m.startswith("sound:hotline-tts/") for m in hotline.observer.heard(caller))


async def test_invalid_input_then_a_valid_choice(hotline: Hotline) -> None:
    caller = "13122220002"
    result = await hotline.call(SipCall(caller, "95000", steps=[(2.0, "7"), (1.5, "3")], max_duration=60))
    assert result.ok, result.stderr
    row = hotline.last_call(caller)
    assert [i["result"] for i in row["inputs"]] == ["invalid", "option"]
    assert row["path"] == ["greeting", "main", "cards"]
    assert "sound:hotline/zh/invalid" in hotline.observer.heard(caller)


async def test_caller_hangs_up_early(hotline: Hotline) -> None:
    caller = "13122220003"
    result = await hotline.call(SipCall(caller, "95000", hangup_after=1.5, max_duration=30))
    assert result.hangup_by == "local", result.stderr
    row = hotline.last_call(caller)
    assert row["outcome"] == "abandoned" and row["path"] == ["greeting"]


async def test_vip_transfer_to_agent_reaches_the_queue(hotline: Hotline) -> None:
    result = await hotline.call(SipCall(VIP_EN, "95001", steps=[(3.0, "0")], max_duration=60))
    assert result.ok and result.hangup_by == "remote", result.stderr
    row = hotline.last_call(VIP_EN)
    assert row["dnis"] == "95001" and row["segment"] == "vip" and row["language"] == "en"
    assert row["outcome"] == "transferred" and row["transfer_target"] == "vip"
    assert "sound:hotline/en/transfer_agent" in hotline.observer.heard(VIP_EN)
    assert any(name.startswith("Local/vip@hotline-fake-agent") for name in hotline.observer.channel_names), \
        "the VIP queue rang its (stand-in) agent"


async def test_timeouts_end_the_call_with_goodbye(hotline: Hotline) -> None:
    caller = "13122220004"
    result = await hotline.call(SipCall(caller, "95000", max_duration=120))
    assert result.ok and result.hangup_by == "remote", result.stderr
    row = hotline.last_call(caller)
    assert row["path"] == ["greeting", "main", "goodbye"] and row["outcome"] == "hangup"
    assert hotline.observer.heard(caller)[-1] == "sound:hotline/zh/goodbye"
