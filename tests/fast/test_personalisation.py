"""Decision order and personalised first menus, through the live call handler (real PostgreSQL:
customers, calendar, emergency, notices) on the simulated channel — and the same handler's time to
service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, time
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest_asyncio

from agi_app.admin.cost import cost_for_caller, cost_for_persona
from agi_app.admin.simulate import Preview, preview
from agi_app.calendar.model import DayRule
from agi_app.config import Settings
from agi_app.db.pool import connection, create_pool
from agi_app.db.repositories import calendar as calendar_repo
from agi_app.db.repositories import customers as customer_repo
from agi_app.db.repositories import operations
from agi_app.directory.models import Customer
from agi_app.engine.call import HotlineFlow
from agi_app.serve.app import build_services, call_handler
from tests.fast.conftest import Hotline, import_demo_customers
from tests.support.demo import BILL_DUE, ELDERLY, KNOWN_ZH, UNKNOWN, VIP_EN, demo_flows
from tests.support.prompts import REPO_SOUNDS

SHANGHAI = ZoneInfo("Asia/Shanghai")
TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=SHANGHAI)
TUESDAY_NIGHT = datetime(2026, 11, 24, 22, 30, tzinfo=SHANGHAI)
#: Recorded prompts whose words say something about the caller (SPEC, call handling 1).
DISCLOSING = {"bill_due_notice", "menu_vip", "salutation_mr", "salutation_ms", "salutation_dr"}


@pytest_asyncio.fixture
async def handler(dsn: str, tmp_path: Path) -> AsyncIterator[HotlineFlow]:
    await import_demo_customers(dsn)
    async with connection(dsn) as conn:  # agents work 08:00-20:00 every day
        await calendar_repo.set_weekly_hours(conn, "*", range(7), [(time(8), time(20))])
    pool = await create_pool(dsn)
    flows = demo_flows()
    settings = Settings(dsn=dsn, sounds_root=str(tmp_path / "sounds"))
    yield call_handler(settings, pool, lambda: flows, build_services())
    await pool.close()


async def first_menu(handler: HotlineFlow, caller: str, line: str = "95000", at: datetime = TUESDAY_NOON) -> Preview:
    return await preview(handler, caller=caller, line=line, at=at)


async def test_each_variant_hears_a_different_first_menu(handler: HotlineFlow) -> None:
    unknown = await first_menu(handler, UNKNOWN)
    vip = await first_menu(handler, VIP_EN, "95001")
    elderly = await first_menu(handler, ELDERLY)
    bill = await first_menu(handler, BILL_DUE)
    closed = await first_menu(handler, UNKNOWN, at=TUESDAY_NIGHT)
    menus = {"unknown": unknown.menu, "vip": vip.menu, "elderly": elderly.menu, "bill": bill.menu, "closed": closed.menu}
    assert menus == {"unknown": "main", "vip": "priority_menu", "elderly": "elderly_menu", "bill": "bill_menu",
                     "closed": "closed_menu"}
    assert unknown.media[:2] == ["sound:hotline/zh/welcome", "sound:hotline/zh/opt_accounts"]
    # Known callers hear what unknown ones hear, no name; each variant differs only silently.
    assert vip.media[0].startswith("sound:hotline/en/greeting_"), "the VIP line's own greeting, for every caller"
    assert elderly.media[0] == bill.media[0] == "sound:hotline/zh/welcome", "known or not: the same greeting"
    assert vip.media[1:4] == ["sound:hotline/en/welcome_vip", "sound:hotline/en/opt_agent",
                              "sound:hotline/en/digits/0"], "the VIP line's welcome, then the agent key first"
    assert elderly.media[1:3] == ["sound:hotline/zh/opt_agent", "sound:hotline/zh/digits/0"], "agent key first"
    assert bill.media[1:3] == ["sound:hotline/zh/opt_bill_payment", "sound:hotline/zh/digits/1"], "bill payment first"
    assert not any(m.endswith("/bill_due_notice") for m in bill.media), "without saying why"
    assert closed.media[:2] == ["sound:hotline/zh/welcome", "sound:hotline/zh/closed_hours"]
    assert [o["key"] for o in closed.options] == ["1", "2", "3"]


async def test_decision_order_emergency_then_holiday(handler: HotlineFlow, dsn: str) -> None:
    async with connection(dsn) as conn:
        await calendar_repo.put_day(conn, DayRule(date(2026, 11, 24), "holiday", "Bank holiday"))
        await operations.switch_on_emergency(conn, line=None, text_zh=None, text_en=None,
                                             sound="emergency_default", until=None, actor="test")
    result = await first_menu(handler, UNKNOWN)
    assert result.media[:3] == ["sound:hotline/zh/emergency_default", "sound:hotline/zh/holiday",
                                "sound:hotline/zh/welcome"]
    assert result.record.path[:3] == ["@emergency", "entry", "holiday_notice"]


async def test_emergency_text_on_one_line_only(handler: HotlineFlow, dsn: str) -> None:
    async with connection(dsn) as conn:
        await operations.switch_on_emergency(conn, line="95001", text_zh=None, text_en="Systems are down.",
                                             sound=None, until=None, actor="test")
    general = await first_menu(handler, UNKNOWN)
    vip = await first_menu(handler, VIP_EN, "95001")
    assert "@emergency" not in general.record.path
    assert vip.media[0].startswith("sound:hotline-tts/") and vip.record.path[0] == "@emergency"


async def test_bill_due_by_date_within_the_configured_days(handler: HotlineFlow, dsn: str) -> None:
    async with connection(dsn) as conn:
        await customer_repo.import_customers(conn, [
            Customer("D1", "Soon", "Ms", "standard", "en", ("13200000001",), date(2026, 11, 28)),
            Customer("D2", "Later", "Ms", "standard", "en", ("13200000002",), date(2026, 12, 20))])
    assert (await first_menu(handler, "13200000001")).menu == "bill_menu"
    assert (await first_menu(handler, "13200000002")).menu == "main"


async def test_valid_notices_are_inserted_into_the_greeting(handler: HotlineFlow, dsn: str) -> None:
    async with connection(dsn) as conn:
        await operations.add_notice(conn, kind="branch", line=None, text_zh="新网点开业。", text_en=None, sound=None,
                                    valid_from=date(2026, 11, 1), valid_to=date(2026, 11, 30), priority=0, actor="t")
        await operations.add_notice(conn, kind="fee", line=None, text_zh=None, text_en=None, sound="announcement_rates",
                                    valid_from=date(2026, 12, 1), valid_to=date(2026, 12, 31), priority=0, actor="t")
    now = await first_menu(handler, UNKNOWN)
    later = await first_menu(handler, UNKNOWN, at=datetime(2026, 12, 2, 12, 0, tzinfo=SHANGHAI))
    assert now.media[1] == "sound:hotline/zh/service_notice_intro" and now.media[2].startswith("sound:hotline-tts/")
    assert later.media[1:3] == ["sound:hotline/zh/service_notice_intro", "sound:hotline/zh/announcement_rates"]


async def test_personalised_variants_reach_their_top_service_faster(handler: HotlineFlow) -> None:
    generic = {c.service: c for c in await cost_for_persona(handler, name="generic", line="95000", at=TUESDAY_NOON,
                                                           sounds_dir=REPO_SOUNDS)}
    for persona, top in (("elderly", "agent"), ("vip", "agent"), ("bill_due", "bill_payment")):
        costs = await cost_for_persona(handler, name=persona, line="95000", at=TUESDAY_NOON, sounds_dir=REPO_SOUNDS)
        assert costs[0].service == top, (persona, costs[0])
        assert costs[0].seconds < generic[top].seconds, (persona, costs[0], generic[top])
        assert costs[0].depth == 1 and len(costs[0].keys) == 1


async def test_cost_for_one_caller_has_the_interface_fields(handler: HotlineFlow) -> None:
    costs = [c.as_json() for c in await cost_for_caller(handler, caller=BILL_DUE, line="95000", at=TUESDAY_NOON,
                                                        sounds_dir=REPO_SOUNDS)]
    services = {c["service"]: c for c in costs}
    assert {"balance", "bill_payment", "transfer", "card_loss", "pin_change", "agent", "complaint"} <= set(services)
    assert services["bill_payment"]["keys"] == "1" and services["bill_payment"]["depth"] == 1
    assert services["card_loss"]["keys"] == "31"
    assert all(isinstance(c["seconds"], float) and c["seconds"] > 0 for c in costs)


async def test_a_spoofed_customer_number_hears_no_name_and_nothing_about_the_account(hotline: Hotline) -> None:
    """Numbers can be spoofed: before PIN authentication the directory shapes the call silently
    (variant, option order, language) and nothing spoken tells who the number belongs to."""
    for caller, menu in ((KNOWN_ZH, "main"), (BILL_DUE, "bill_menu"), (VIP_EN, "priority_menu"),
                         (ELDERLY, "elderly_menu")):
        call = await hotline.call(caller, "95000")
        await hotline.ari.wait_for(partial(_announced, hotline, call, "0"))
        await hotline.ari.press(call, "0")
        row = await hotline.wait_ended(call)
        played = hotline.played(call)
        assert row["customer_id"] is not None and menu in row["path"], (caller, row["path"])
        assert not [u for u in played if u.startswith("sound:hotline-tts/")], (caller, "no generated speech")
        assert not [u for u in played if u.rsplit("/", 1)[1] in DISCLOSING | {"welcome_vip"}], (caller, played)
        assert played[0] == "sound:hotline/zh/welcome" or played[0] == "sound:hotline/en/welcome", \
            (caller, "the greeting unknown callers hear too")


def _announced(hotline: Hotline, call: str, key: str) -> bool:
    return any(u.endswith(f"/digits/{key}") for u in hotline.played(call))
