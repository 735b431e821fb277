"""Real SIP calls into a real Asterisk, answered by `hotline serve` serving the published menus.

The independent calls run concurrently (one SIPp process each) to keep the suite short; each test
then checks its own call in `hotline calls list --json` and in what the observer saw played.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from tests.e2e.conftest import Hotline, e2e_flows_file
from tests.support.agents import DemoAgent, load_agents
from tests.support.sipp import SipCall, SipResult

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

KNOWN_ZH, VIP_EN, ELDERLY, BILL_DUE = "13800138000", "13700137000", "13600136000", "13500135000"
TTS = "sound:hotline-tts/"


@dataclass
class Placed:
    result: SipResult
    row: dict[str, Any]
    heard: list[str]


BATCH = {
    # "1" early in the main menu (type-ahead stops it) → accounts; "0" → the general agent queue
    "known": SipCall(KNOWN_ZH, "95000", steps=[(3.0, "1"), (2.0, "0")], max_duration=60),
    "unknown": SipCall("13122220001", "95000", steps=[(2.0, "0")], max_duration=60),
    "invalid": SipCall("13122220002", "95000", steps=[(2.0, "7"), (1.5, "3")], max_duration=60),
    "early_hangup": SipCall("13122220003", "95000", hangup_after=1.5, max_duration=30),
    "timeouts": SipCall("13122220004", "95000", max_duration=150),
    "vip": SipCall(VIP_EN, "95001", steps=[(9.0, "0")], max_duration=60),
    "elderly": SipCall(ELDERLY, "95000", steps=[(9.0, "0")], max_duration=60),
    "bill_due": SipCall(BILL_DUE, "95000", steps=[(9.0, "4")], max_duration=60),  # card and bill questions
}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def batch(hotline: Hotline, demo_agents: dict[str, DemoAgent]) -> dict[str, Placed]:
    results = await asyncio.gather(*(hotline.call(call) for call in BATCH.values()))
    return {name: Placed(result, hotline.last_call(call.caller), hotline.observer.heard(call.caller))
            for (name, call), result in zip(BATCH.items(), results, strict=True)}


async def test_known_customer_chooses_options(batch: dict[str, Placed]) -> None:
    placed = batch["known"]
    assert placed.result.ok, placed.result.stderr
    row = placed.row
    assert row["customer_id"] == "C001" and row["segment"] == "standard" and row["menu_version"] == 1
    assert row["path"] == ["entry", "greeting", "segment", "main", "accounts", "agent_general"]
    assert row["outcome"] == "transferred" and row["transfer_target"] == "general"
    assert placed.heard[0] == "sound:hotline/zh/welcome", "the greeting every caller hears"
    assert not any(m.startswith(TTS) for m in placed.heard), "no name before PIN authentication"


async def test_unknown_caller_reaches_an_agent(batch: dict[str, Placed]) -> None:
    placed = batch["unknown"]
    assert placed.result.ok and placed.result.hangup_by == "remote", placed.result.stderr
    assert placed.row["customer_id"] is None and placed.row["transfer_target"] == "general"
    assert placed.heard[0] == "sound:hotline/zh/welcome" and not any(m.startswith(TTS) for m in placed.heard)


async def test_invalid_input_then_a_valid_choice(batch: dict[str, Placed]) -> None:
    row = batch["invalid"].row
    assert [i["result"] for i in row["inputs"]] == ["invalid", "option"]
    assert row["path"] == ["entry", "greeting", "segment", "main", "agent_cards"]
    assert "sound:hotline/zh/invalid" in batch["invalid"].heard


async def test_caller_hangs_up_early(batch: dict[str, Placed]) -> None:
    placed = batch["early_hangup"]
    assert placed.result.hangup_by == "local", placed.result.stderr
    assert placed.row["outcome"] == "abandoned" and placed.row["path"] == ["entry", "greeting"]


async def test_timeouts_end_the_call_with_goodbye(batch: dict[str, Placed]) -> None:
    placed = batch["timeouts"]
    assert placed.result.ok and placed.result.hangup_by == "remote", placed.result.stderr
    assert placed.row["path"][-3:] == ["main", "farewell", "goodbye"] and placed.row["outcome"] == "hangup"
    assert placed.heard.count("sound:hotline/zh/timeout") == 2 and placed.heard[-1] == "sound:hotline/zh/goodbye"


async def test_vip_on_the_vip_line_hears_its_welcome_and_the_agent_key_first(batch: dict[str, Placed],
                                                                             hotline: Hotline) -> None:
    placed = batch["vip"]
    assert placed.result.ok and placed.result.hangup_by == "remote", placed.result.stderr
    assert placed.row["dnis"] == "95001" and placed.row["segment"] == "vip" and placed.row["language"] == "en"
    assert placed.row["path"] == ["entry", "greeting", "priority_menu", "relationship_team"]
    assert placed.heard[1:3] == ["sound:hotline/en/welcome_vip", "sound:hotline/en/opt_agent"]
    assert not any(m.startswith(TTS) for m in placed.heard), "no name before PIN authentication"
    vip_agents = {f"PJSIP/agent-{spec.id}-" for spec in load_agents() if "vip" in spec.groups}
    assert any(name.startswith(tuple(vip_agents)) for name in hotline.observer.channel_names), \
        "the VIP queue rang one of its demo agents"
    # After the transfer the dialplan speaks English too: the app set HOTLINE_LANGUAGE before its
    # continue, and the survey's way back from the agent (Stasis ...,<language>) carries it.
    channel = placed.row["call_id"]
    mine = [e for e in hotline.observer.events if e.get("channel", {}).get("id") == channel]
    set_at = [i for i, e in enumerate(mine) if e["type"] == "ChannelVarset"
              and e.get("variable") == "HOTLINE_LANGUAGE" and e.get("value") == "en"]
    queued_at = [i for i, e in enumerate(mine) if e["type"] == "ChannelDialplan"
                 and e["channel"]["dialplan"]["context"] == "hotline-agents"]
    assert set_at and queued_at and set_at[0] < queued_at[0], "HOTLINE_LANGUAGE=en, then the queue context"
    steps = hotline.observer.dialplan[channel]
    survey = [data.split(",") for app, data in steps if app == "Stasis" and ",survey," in data]
    assert survey and survey[-1][3] == "vip" and survey[-1][-1] == "en", steps
    assert all(data.startswith("hotline/en/") for app, data in steps if app == "Playback"), steps
    assert "sound:hotline/en/survey_intro" in placed.heard and not any("/zh/" in m for m in placed.heard)


async def test_elderly_customer_hears_the_agent_key_first(batch: dict[str, Placed]) -> None:
    placed = batch["elderly"]
    assert placed.row["segment"] == "elderly"
    assert placed.heard[1:3] == ["sound:hotline/zh/opt_agent", "sound:hotline/zh/digits/0"]
    assert placed.row["path"][-2:] == ["elderly_menu", "agent_elderly"] and placed.row["transfer_target"] == "elderly"


async def test_bill_due_customer_is_offered_bill_payment_first_without_being_told_why(batch: dict[str, Placed]) -> None:
    placed = batch["bill_due"]
    assert placed.heard[1:3] == ["sound:hotline/zh/opt_bill_payment", "sound:hotline/zh/digits/1"]
    assert "sound:hotline/zh/bill_due_notice" not in placed.heard
    assert placed.row["path"][-2:] == ["bill_menu", "agent_cards"]


async def test_closed_hours_menu(batch: dict[str, Placed], hotline: Hotline) -> None:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert hotline.cli("calendar", "exception", "add", today, "--closed", "--name", "e2e").returncode == 0
    try:
        caller = "13122220005"
        result = await hotline.call(SipCall(caller, "95000", steps=[(9.0, "2")], max_duration=60))
    finally:
        assert hotline.cli("calendar", "exception", "remove", today).returncode == 0
    assert result.ok, result.stderr
    row = hotline.last_call(caller)
    assert row["path"] == ["entry", "closed_greeting", "closed_menu", "report_card_loss"]
    assert row["transfer_target"] == "risk"
    assert "sound:hotline/zh/closed_hours" in hotline.observer.heard(caller)


async def test_emergency_on_and_off_reach_the_next_caller(batch: dict[str, Placed], hotline: Hotline) -> None:
    assert hotline.cli("emergency", "on", "--sound", "emergency_default").returncode == 0
    try:
        during = await hotline.call(SipCall("13122220006", "95000", hangup_after=4.0, max_duration=30))
    finally:
        assert hotline.cli("emergency", "off").returncode == 0
    after = await hotline.call(SipCall("13122220007", "95000", hangup_after=2.0, max_duration=30))
    assert during.hangup_by == "local" and after.hangup_by == "local"
    assert hotline.observer.heard("13122220006")[0] == "sound:hotline/zh/emergency_default"
    assert hotline.last_call("13122220006")["path"][0] == "@emergency"
    assert hotline.observer.heard("13122220007")[0] == "sound:hotline/zh/welcome"


async def test_reload_during_a_call_keeps_its_version(batch: dict[str, Placed], hotline: Hotline) -> None:
    first = asyncio.create_task(hotline.call(SipCall("13122220008", "95000", steps=[(12.0, "0")], max_duration=60)))
    await asyncio.sleep(3.0)  # the first call is in its menus now
    new = e2e_flows_file(hotline.tmp, "v2.yaml", main_intro="{{ sound('announcement_hours') }}")
    published = hotline.cli("menus", "publish", str(new), "-m", "e2e v2")
    assert "published version 2" in published.stdout, published.stderr
    for _ in range(50):
        if hotline.log_has("event=menus_reloaded version=2"):
            break
        await asyncio.sleep(0.1)
    second = await hotline.call(SipCall("13122220009", "95000", steps=[(5.0, "0")], max_duration=60))
    assert (await first).ok and second.ok
    old, new_row = hotline.last_call("13122220008"), hotline.last_call("13122220009")
    assert (old["menu_version"], new_row["menu_version"]) == (1, 2)
    assert "sound:hotline/zh/announcement_hours" not in hotline.observer.heard("13122220008")
    assert "sound:hotline/zh/announcement_hours" in hotline.observer.heard("13122220009")
