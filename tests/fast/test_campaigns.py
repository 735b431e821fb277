"""Outbound campaigns: the rules (states, four eyes, hours on the calendar's open days, attempts),
and `hotline campaigns` as administrators run it against a real PostgreSQL database."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from agi_app.calendar.model import Calendar, DayRule, WeeklyHours
from agi_app.centre.campaigns import (
    MAX_ATTEMPTS,
    AttemptLeg,
    CampaignError,
    Hours,
    Result,
    State,
    after_attempt,
    check_approver,
    check_name,
    free_lines,
    may_dial,
    move,
)
from agi_app.db.pool import connection
from agi_app.db.repositories import audit
from tests.fast.conftest import fetch, import_demo_customers
from tests.support.cli import hotline_cli

SHANGHAI = Calendar("Asia/Shanghai")  # no hours configured: every day open
# 2026-11-23 is a Monday; 10:00 in Shanghai is 02:00 UTC.
MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


# --- the rules ------------------------------------------------------------------------------------
def test_hours_are_a_window_of_one_day() -> None:
    assert Hours.parse("09:00-18:00") == Hours(time(9), time(18))
    assert str(Hours.parse("9:30-24:00")) == "09:30-24:00"
    for bad in ("18:00-09:00", "09:00", "09:00-09:00", "25:00-26:00", "nine-ten"):
        with pytest.raises(CampaignError):
            Hours.parse(bad)


def test_dialling_is_allowed_within_the_hours_in_the_banks_time_zone() -> None:
    hours = Hours.parse("09:00-18:00")
    assert may_dial(MONDAY_10, hours, SHANGHAI)
    assert may_dial(MONDAY_10.replace(hour=1), hours, SHANGHAI), "09:00 Shanghai: the first minute"
    assert not may_dial(MONDAY_10.replace(hour=0, minute=59), hours, SHANGHAI), "08:59 Shanghai"
    assert not may_dial(MONDAY_10.replace(hour=10), hours, SHANGHAI), "18:00 Shanghai: the end is exclusive"
    assert not may_dial(MONDAY_10, hours, Calendar("Europe/London")), "02:00 in London"
    with pytest.raises(ValueError):
        may_dial(MONDAY_10.replace(tzinfo=None), hours, SHANGHAI)


def test_dialling_needs_a_day_the_calendar_opens() -> None:
    hours = Hours.parse("00:00-24:00")
    holiday = Calendar("Asia/Shanghai", days=(DayRule(date(2026, 11, 23), "holiday", "Bank day"),))
    assert not may_dial(MONDAY_10, hours, holiday)
    assert may_dial(MONDAY_10 + timedelta(days=1), hours, holiday)
    weekdays = Calendar("Asia/Shanghai", weekly=tuple(WeeklyHours(d, ((time(8), time(20)),)) for d in range(5)))
    assert may_dial(MONDAY_10, hours, weekdays)
    assert not may_dial(MONDAY_10 + timedelta(days=5), hours, weekdays), "a Saturday the calendar does not open"
    # The campaign's own hours, not the agents' opening hours, bound the time of day on an open day.
    assert may_dial(MONDAY_10.replace(hour=13), hours, weekdays), "21:00 on an open Monday"


def test_states_move_only_as_the_lifecycle_allows() -> None:
    assert move("approve", State.DRAFT) == State.APPROVED
    assert move("start", State.APPROVED) == State.RUNNING
    assert move("pause", State.RUNNING) == State.PAUSED
    assert move("start", State.PAUSED) == State.RUNNING
    for verb, state in (("start", State.DRAFT), ("approve", State.RUNNING), ("pause", State.PAUSED),
                        ("start", State.FINISHED)):
        with pytest.raises(CampaignError, match=f"cannot {verb}"):
            move(verb, state)


def test_the_creator_may_not_approve_their_own_campaign() -> None:
    check_approver("li.na", "wang.wei")
    for same in ("li.na", "Li.Na", " li.na "):
        with pytest.raises(CampaignError, match="another administrator"):
            check_approver("li.na", same)
    with pytest.raises(CampaignError):
        check_approver("li.na", " ")


def test_a_customer_gets_at_most_three_attempts_and_none_after_answering() -> None:
    delay = timedelta(minutes=30)
    assert after_attempt(1, Result.NO_ANSWER, delay).due_in == delay
    assert not after_attempt(2, Result.BUSY, delay).done
    assert after_attempt(MAX_ATTEMPTS, Result.FAILED, delay).done
    assert after_attempt(1, Result.ANSWERED, delay).done
    with pytest.raises(ValueError):
        after_attempt(1, Result.DIALLING, delay)
    assert MAX_ATTEMPTS == 3


def test_free_lines_and_attempt_channel_ids() -> None:
    assert (free_lines(2, 0), free_lines(2, 2), free_lines(2, 3)) == (2, 0, 0)
    leg = AttemptLeg(7, 2)
    assert leg.channel_id == "campaign-7-2" and AttemptLeg.parse(leg.channel_id) == leg
    for not_ours in ("campaign-7", "campaign-7-2-x", "callback-7-2-agent", "1732000000.1"):
        assert AttemptLeg.parse(not_ours) is None
    assert check_name("cards-2026_q4")
    for bad in ("Cards", "x y", "", "a;b"):
        with pytest.raises(CampaignError):
            check_name(bad)


# --- the command line ---------------------------------------------------------------------------------
def campaigns(dsn: str, *args: str, actor: str = "li.na") -> tuple[int, str, str]:
    done = hotline_cli(dsn, "campaigns", *args, actor=actor)
    return done.returncode, done.stdout, done.stderr


async def test_created_by_one_approved_by_another_both_in_the_audit_log(dsn: str, tmp_path: Path) -> None:
    await import_demo_customers(dsn)
    listing = tmp_path / "list.csv"
    listing.write_text("customer_id,phone\nC002,\n,+86 131-0000-0001\nC004,13100000002\n", encoding="utf-8")
    code, out, err = campaigns(dsn, "create", "cards", "--department", "cards", "--message-sound",
                               "announcement_rates", "--customers", str(listing), "--hours", "09:00-18:00",
                               "--concurrency", "3")
    assert code == 0, err
    assert "3 customers" in out and "draft" in out
    rows = await fetch(dsn, "SELECT customer_id, number FROM campaign_targets ORDER BY target_id")
    assert [tuple(r) for r in rows] == [(None, "13100000001"), (None, "13100000002"), ("C002", "13900139000")]

    code, _, err = campaigns(dsn, "start", "cards", actor="wang.wei")
    assert code == 1 and "cannot start a draft campaign" in err, "not before approval"
    code, _, err = campaigns(dsn, "approve", "cards", "--actor", "li.na", actor="someone")
    assert code == 1 and "another administrator must approve it" in err
    code, _, err = campaigns(dsn, "approve", "cards")  # $HOTLINE_ACTOR is the creator too
    assert code == 1
    code, out, err = campaigns(dsn, "approve", "cards", "--actor", "wang.wei")
    assert code == 0, err
    assert "created by li.na, approved by wang.wei" in out
    assert campaigns(dsn, "start", "cards", actor="wang.wei")[0] == 0
    assert campaigns(dsn, "pause", "cards", actor="wang.wei")[0] == 0

    async with connection(dsn) as conn:
        log = list(reversed(await audit.recent(conn)))
    assert [(r["actor"], r["action"]) for r in log] == [
        ("li.na", "campaigns.create"), ("wang.wei", "campaigns.approve"), ("wang.wei", "campaigns.start"),
        ("wang.wei", "campaigns.pause")]
    assert log[1]["detail"] == {"campaign": "cards", "from": "draft", "to": "approved", "created_by": "li.na"}
    assert log[0]["detail"]["targets"] == 3 and log[0]["detail"]["department"] == "cards"

    code, out, _ = campaigns(dsn, "status", "cards", "--json")
    (status,) = json.loads(out)
    assert (status["state"], status["created_by"], status["approved_by"]) == ("paused", "li.na", "wang.wei")
    assert status["attempts"] == {"dialling": 0, "answered": 0, "busy": 0, "no_answer": 0, "failed": 0}
    assert (status["customers"], status["pending"], status["hours"]) == (3, 3, "09:00-18:00")


async def test_a_segment_campaign_with_a_text_message_and_its_status_text(dsn: str) -> None:
    await import_demo_customers(dsn)
    code, out, err = campaigns(dsn, "create", "vip-notice", "--department", "wealth", "--message-text",
                               "您好，这是一条通知。", "--segment", "vip", "--hours", "10:00-12:00")
    assert code == 0, err
    numbers = await fetch(dsn, "SELECT customer_id FROM campaign_targets ORDER BY customer_id")
    vips = await fetch(dsn, "SELECT p.customer_id FROM customer_phones p JOIN customers USING (customer_id)"
                            " WHERE segment = 'vip' ORDER BY p.customer_id")
    assert [r[0] for r in numbers] == [r[0] for r in vips] and numbers
    await fetch(dsn, "INSERT INTO customer_phones (phone, customer_id) VALUES ('+442079460000', 'C002')")
    assert campaigns(dsn, "create", "vip-2", "--department", "wealth", "--message-text", "x", "--segment", "vip",
                     "--hours", "10:00-12:00")[0] == 0
    numbers2 = await fetch(dsn, "SELECT number FROM campaign_targets t JOIN campaigns USING (campaign_id)"
                                " WHERE name = 'vip-2'")
    assert len(numbers2) == len(vips) and all(r[0].isdigit() for r in numbers2), "no international number"
    code, out, _ = campaigns(dsn, "status")
    assert code == 0 and "vip-notice  draft  department=wealth  hours=10:00-12:00" in out
    assert "created by li.na, approved by -" in out and "answered=0" in out and "message=text" in out


@pytest.mark.parametrize(("args", "message"), [
    (("--message-sound", "announcement_rates", "--message-text", "x"), "give one message"),
    (("--message-sound", "no_such_prompt"), "no recorded prompt zh/no_such_prompt"),
    (("--message-sound", "../etc/passwd"), "bad prompt id"),
    (("--message-text", "hi", "--hours", "18:00-09:00"), "ends before it starts"),
    (("--message-text", "hi", "--concurrency", "0"), "concurrency 0"),
])
async def test_create_refuses_what_could_not_be_dialled_as_meant(dsn: str, tmp_path: Path, args: tuple[str, ...],
                                                               message: str) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("phone\n13100000001\n", encoding="utf-8")
    base = ["create", "c1", "--department", "cards", "--customers", str(listing)]
    full = [*base, *args] if "--hours" in args else [*base, *args, "--hours", "09:00-18:00"]
    code, _, err = campaigns(dsn, *full)
    assert code == 1 and message in err, err
    assert not await fetch(dsn, "SELECT 1 FROM campaigns")


async def test_a_list_with_unknown_customers_or_bad_numbers_is_refused_whole(dsn: str, tmp_path: Path) -> None:
    await import_demo_customers(dsn)
    listing = tmp_path / "list.csv"
    listing.write_text("customer_id,phone\nC999,\n,12ab\n,+44 20 7946 0000\n", encoding="utf-8")
    code, _, err = campaigns(dsn, "create", "c1", "--department", "cards", "--message-text", "hi",
                             "--customers", str(listing), "--hours", "09:00-18:00")
    assert code == 1
    assert "line 3: not a dialable national number" in err and "line 4" in err and "customer C999" in err
    assert not await fetch(dsn, "SELECT 1 FROM campaigns")
    assert campaigns(dsn, "create", "c1", "--department", "x", "--message-text", "hi", "--segment", "vip",
                     "--customers", str(listing), "--hours", "09:00-18:00")[0] == 1
