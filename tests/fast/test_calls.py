"""Whole calls through the real engine, ARI client and PostgreSQL, against the fake ARI server."""

from __future__ import annotations

import asyncio

from tests.fast.conftest import Hotline
from tests.support.demo import KNOWN_ZH, MAIN_ZH, UNKNOWN


def is_speech(uri: str) -> bool:
    return uri.startswith("sound:hotline-tts/")


async def test_known_caller_is_greeted_without_a_name_and_walks_the_menus(hotline: Hotline) -> None:
    call = await hotline.call(KNOWN_ZH)
    ari = hotline.ari
    await hotline.heard(call, MAIN_ZH)
    await ari.press(call, "1")  # balance and accounts
    await hotline.heard(call, "sound:hotline/zh/opt_transfer")
    await ari.press(call, "3")  # deposit rates announcement, then back to the accounts menu
    await ari.wait_for(lambda: hotline.played(call).count("sound:hotline/zh/opt_transfer") == 2)
    await ari.press(call, "*")  # universal back key: the main menu
    await ari.wait_for(lambda: hotline.played(call).count(MAIN_ZH) == 2)
    await ari.press(call, "3")  # pay the card bill: the cards queue
    row = await hotline.wait_ended(call)

    played = hotline.played(call)
    assert played[0] == "sound:hotline/zh/welcome", "the greeting every caller hears: no name before the PIN"
    assert not any(is_speech(u) for u in played) and "sound:hotline/zh/salutation_mr" not in played
    assert played[1] == MAIN_ZH, "then the main menu, interrupted by the caller's key"
    assert "sound:hotline/zh/announcement_rates" in played
    assert row["customer_id"] == "C001" and row["segment"] == "standard" and row["language"] == "zh"
    assert row["path"] == ["entry", "greeting", "segment", "main", "accounts", "rates", "accounts", "main",
                           "agent_cards"]
    assert [i["result"] for i in row["inputs"]] == ["option", "option", "back", "option"]
    assert row["outcome"] == "transferred" and row["transfer_target"] == "cards"
    assert hotline.ari.channel(call).continued_to == ("hotline-agents", "cards", 1)
    assert row["menu_version"] == 1 and row["duration_ms"] >= 0


async def test_unknown_caller_gets_the_general_menu_without_a_name(hotline: Hotline) -> None:
    call = await hotline.call(UNKNOWN)
    await hotline.heard(call, MAIN_ZH)
    await hotline.ari.press(call, "0")
    row = await hotline.wait_ended(call)
    assert not any(is_speech(u) for u in hotline.played(call))
    assert hotline.played(call)[0] == "sound:hotline/zh/welcome"
    assert row["customer_id"] is None and row["segment"] is None
    assert row["outcome"] == "transferred" and row["transfer_target"] == "general"
    assert hotline.ari.channel(call).continued_to == ("hotline-agents", "general-zh", 1)


async def test_vip_line_plays_the_vip_menu_in_the_callers_language(hotline: Hotline) -> None:
    call = await hotline.call("+86 137 0013 7000", dnis="95001")  # C003, as people write it
    await hotline.heard(call, "sound:hotline/en/digits/0")
    await hotline.ari.press(call, "0")
    row = await hotline.wait_ended(call)
    played = hotline.played(call)
    assert played[0] == "sound:hotline/en/greeting_" + played[0].rsplit("_", 1)[1], "the VIP line's own greeting"
    assert not any(is_speech(u) for u in played), "no name before authentication"
    assert played[1:4] == ["sound:hotline/en/welcome_vip", "sound:hotline/en/opt_agent", "sound:hotline/en/digits/0"]
    assert row["customer_id"] == "C003" and row["dnis"] == "95001"
    assert row["path"] == ["entry", "greeting", "priority_menu", "relationship_team"]
    assert row["transfer_target"] == "vip"


async def test_invalid_digit_then_valid_choice(hotline: Hotline) -> None:
    call = await hotline.call(UNKNOWN)
    await hotline.heard(call, MAIN_ZH)
    await hotline.ari.press(call, "7")
    await hotline.heard(call, "sound:hotline/zh/invalid")
    await hotline.ari.press(call, "3")
    row = await hotline.wait_ended(call)
    assert row["path"] == ["entry", "greeting", "segment", "main", "agent_cards"]
    assert [i["result"] for i in row["inputs"]] == ["invalid", "option"]
    assert row["transfer_target"] == "cards"


async def test_timeouts_lead_to_the_final_destination(hotline: Hotline) -> None:
    call = await hotline.call(UNKNOWN)
    row = await hotline.wait_ended(call)
    played = hotline.played(call)
    assert played.count("sound:hotline/zh/timeout") == 2, "3 timeouts: the prompt is retried twice"
    assert played[-1] == "sound:hotline/zh/goodbye"
    assert row["path"] == ["entry", "greeting", "segment", "main", "farewell", "goodbye"]  # no login: no survey
    assert row["outcome"] == "hangup"
    assert hotline.ari.channel(call).hungup


async def test_invalid_keys_are_counted_apart_from_timeouts(hotline: Hotline) -> None:
    call = await hotline.call(UNKNOWN)
    await hotline.heard(call, MAIN_ZH)
    await hotline.ari.press(call, "7")
    await hotline.heard(call, "sound:hotline/zh/invalid")
    await hotline.heard(call, "sound:hotline/zh/timeout")  # one timeout
    await hotline.ari.press(call, "8")
    await hotline.ari.wait_for(lambda: hotline.played(call).count("sound:hotline/zh/invalid") == 2)
    await hotline.ari.press(call, "8")
    row = await hotline.wait_ended(call)
    assert row["path"][-2:] == ["main", "too_many"], "3rd invalid key ends in the invalid destination"
    assert row["transfer_target"] == "general"


async def test_type_ahead_during_a_prompt_stops_it_and_counts(hotline: Hotline) -> None:
    hotline.ari.media_duration = lambda uri: 5.0 if uri.endswith("/welcome") else 0.05  # a long greeting
    call = await hotline.call(UNKNOWN)
    await hotline.ari.wait_for(lambda: hotline.played(call) == ["sound:hotline/zh/welcome"])
    await hotline.ari.press(call, "3")
    row = await hotline.wait_ended(call)
    assert hotline.ari.channel(call).stopped, "the greeting was stopped by the digit"
    assert MAIN_ZH not in hotline.played(call), "the menu prompt is skipped"
    assert row["path"] == ["entry", "greeting", "segment", "main", "agent_cards"]


async def test_caller_hangs_up_during_a_prompt(hotline: Hotline) -> None:
    hotline.ari.media_duration = lambda uri: 5.0
    call = await hotline.call(UNKNOWN)
    await hotline.heard(call, "sound:hotline/zh/welcome")
    await hotline.ari.hangup(call)
    row = await hotline.wait_ended(call)
    assert row["outcome"] == "abandoned" and row["path"] == ["entry", "greeting"]
    after = [r for r in hotline.ari.requests if call in r.path and r.method == "POST" and "/play" in r.path]
    assert len(after) == 1, "nothing more is played to a caller who hung up"


async def test_dtmf_flood_and_garbage_never_break_the_call(hotline: Hotline) -> None:
    call = await hotline.call(UNKNOWN)
    await hotline.heard(call, MAIN_ZH)
    await hotline.ari.press(call, "7" * 200, gap=0)
    row = await hotline.wait_ended(call)
    assert row["path"][-2:] == ["main", "too_many"]
    assert row["outcome"] == "transferred"


async def test_unknown_dialled_number_gets_the_general_flow(hotline: Hotline, caplog) -> None:  # type: ignore[no-untyped-def]
    call = await hotline.call(UNKNOWN, dnis="99999")
    await hotline.heard(call, MAIN_ZH)
    await hotline.ari.hangup(call)
    row = await hotline.wait_ended(call)
    assert row["dnis"] == "99999" and row["path"][:4] == ["entry", "greeting", "segment", "main"]
    assert any("event=unknown_line" in r.message and call in r.message for r in caplog.records)


async def test_calls_run_concurrently_each_in_its_own_task(hotline: Hotline) -> None:
    calls = [await hotline.call(f"1310000{i:04d}") for i in range(20)]
    await asyncio.gather(*(hotline.ari.wait_for(lambda c=c: MAIN_ZH in hotline.played(c)) for c in calls))
    for i, call in enumerate(calls):
        await hotline.ari.press(call, "3" if i % 2 else "0")
    rows = [await hotline.wait_ended(c) for c in calls]
    assert [r["transfer_target"] for r in rows] == ["general" if i % 2 == 0 else "cards" for i in range(20)]


async def test_server_shutdown_hands_calls_in_progress_to_the_dialplan(hotline: Hotline) -> None:
    hotline.ari.media_duration = lambda uri: 30.0  # the call cannot finish within the grace period
    call = await hotline.call(UNKNOWN)
    await hotline.ari.wait_for(lambda: bool(hotline.played(call)))
    await hotline.stop()
    assert hotline.ari.channel(call).continued_to == ("hotline-fallback", "s", 1), "not cut: handed over"
    assert not hotline.ari.channel(call).hungup
    late = await hotline.ari.place_call(UNKNOWN, "95000")
    assert hotline.ari.channel(late).hungup, "after shutdown the app is gone; Stasis fails in the dialplan"


async def test_a_caller_gone_as_the_call_arrives_ends_its_journey_and_frees_its_slot(hotline: Hotline) -> None:
    """The hang-up handled in the same loop step as the StasisStart: the call's task was cancelled
    before it ever ran, so its journey stayed open and its session held a slot until shutdown."""
    call = await hotline.call(UNKNOWN)
    await hotline.ari.hangup(call)
    ended = await hotline.wait_ended(call, timeout=5)
    assert ended["outcome"] == "abandoned"
    assert call not in hotline.server.calls.sessions and not hotline.server.calls._tasks
