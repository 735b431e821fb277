"""`hotline calendar` against a real PostgreSQL: what administrators type, what gets stored and audited;
and the local times other commands take (`--at`, `--until`, notice dates), read in the same zone.

The group is invoked through click's CliRunner with the same settings object `hotline` builds, so
these tests do not depend on where the group is registered. CliRunner runs `asyncio.run` inside,
so the tests are plain functions on the session database, emptied at the start of each test.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import click
import pytest
from click.testing import CliRunner, Result

from agi_app.cli.calendar import calendar
from agi_app.cli.menus import menus
from agi_app.cli.operations import emergency, notices
from agi_app.cli.simulate import cost, preview, simulate
from agi_app.config import Settings
from agi_app.db.pool import connection
from agi_app.db.repositories.calendar import load_calendar
from agi_app.flows.loader import demo_flow_path
from tests.fast.conftest import query


def hotline_calendar(dsn: str, *args: str, command: click.Command = calendar) -> Result:
    return CliRunner().invoke(command, list(args), obj={"settings": Settings(dsn=dsn)},
                              env={"HOTLINE_ACTOR": "tester"})


def ok(dsn: str, *args: str, command: click.Command = calendar) -> Any:
    """Run a command that must succeed; its --json output, parsed, when asked for."""
    result = hotline_calendar(dsn, *args, command=command)
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout) if "--json" in args else result.stdout


def audit_actions(dsn: str) -> list[str]:
    return [r["action"] for r in query(dsn, "SELECT action FROM audit_log ORDER BY id")]


def status(dsn: str, when: str, *extra: str) -> dict[str, Any]:
    result: dict[str, Any] = ok(dsn, "status", "--at", when, "--json", *extra)
    return result


def test_a_fresh_calendar_is_open_24x7(db: str) -> None:
    state = status(db, "2026-10-04 03:00")
    assert state["status"] == "open" and state["timezone"] == "Asia/Shanghai" and state["next_open"] is None
    shown = ok(db, "show", "--json")
    assert shown["always_open"] and all(d["hours"] == [["00:00", "24:00"]] for d in shown["weekly"])


def test_set_hours_then_status_show_and_audit(db: str) -> None:
    out = ok(db, "hours", "--days", "mon-fri", "--open", "08:00", "--close", "20:00")
    assert "mon,tue,wed,thu,fri: 08:00-20:00" in out
    ok(db, "hours", "--days", "sat", "--open", "09:00", "--close", "12:00", "--open", "13:00", "--close", "17:00")
    assert status(db, "2026-09-28 08:00")["status"] == "open"           # Monday, the opening minute
    monday_evening = status(db, "2026-09-28 20:00")
    assert monday_evening["status"] == "closed" and monday_evening["next_open"] == "2026-09-29T08:00:00+08:00"
    sunday = status(db, "2026-10-04 10:00")
    assert sunday["status"] == "closed" and sunday["next_open"] == "2026-10-05T08:00:00+08:00"
    assert status(db, "2026-10-03 12:30")["next_open"] == "2026-10-03T13:00:00+08:00"  # Saturday lunch

    shown = ok(db, "show", "--json")
    assert shown["weekly"][0] == {"weekday": 0, "day": "mon", "status": "open", "hours": [["08:00", "20:00"]],
                                  "scope": "*", "source": "weekly"}
    assert shown["weekly"][5]["hours"] == [["09:00", "12:00"], ["13:00", "17:00"]]
    assert shown["weekly"][6]["status"] == "closed" and not shown["always_open"]

    # Replacing Monday's hours replaces, it does not add.
    ok(db, "hours", "--days", "mon", "--open", "10:00", "--close", "16:00")
    rows = query(db, "SELECT opens, closes FROM calendar_weekly_hours WHERE scope = '*' AND weekday = 0")
    assert [(str(r["opens"]), str(r["closes"])) for r in rows] == [("10:00:00", "16:00:00")]

    audit = query(db, "SELECT actor, action, detail FROM audit_log ORDER BY id")
    assert [r["action"] for r in audit] == ["calendar.hours"] * 3
    assert all(r["actor"] == "tester" for r in audit)
    last = json.loads(audit[-1]["detail"])
    assert last["days"] == ["mon"] and last["hours"] == [["10:00", "16:00"]]
    assert last["previous"] == {"mon": [["08:00", "20:00"]]}


def test_closed_and_unset_days(db: str) -> None:
    ok(db, "hours", "--days", "all", "--open", "08:00", "--close", "20:00")
    ok(db, "hours", "--days", "sun", "--closed")
    assert status(db, "2026-10-04 10:00")["status"] == "closed"
    ok(db, "hours", "--days", "all", "--unset")
    assert status(db, "2026-10-04 03:00")["status"] == "open"  # nothing configured: 24x7 again
    assert query(db, "SELECT 1 FROM calendar_weekly_hours") == []


def test_holidays_win_and_can_be_removed(db: str) -> None:
    ok(db, "hours", "--days", "mon-fri", "--open", "08:00", "--close", "20:00")
    out = ok(db, "holiday", "add", "2026-10-01..2026-10-07", "--name", "National Day")
    assert out.count("holiday 'National Day'") == 7
    state = status(db, "2026-10-01 10:00")
    assert state["status"] == "holiday" and state["holiday_name"] == "National Day"
    assert state["next_open"] == "2026-10-08T08:00:00+08:00"
    assert status(db, "2026-09-30 20:00")["next_open"] == "2026-10-08T08:00:00+08:00"

    shown = ok(db, "show", "--json", "--all")
    assert [d["date"] for d in shown["days"]][:2] == ["2026-10-01", "2026-10-02"]

    ok(db, "holiday", "remove", "2026-10-02")
    assert status(db, "2026-10-02 10:00")["status"] == "open"
    again = hotline_calendar(db, "holiday", "remove", "2026-10-02")
    assert again.exit_code == 1 and "no holiday on 2026-10-02" in again.stderr
    assert audit_actions(db) == ["calendar.hours", "calendar.holiday_add", "calendar.holiday_remove"]
    detail = json.loads(query(db, "SELECT detail FROM audit_log WHERE action = 'calendar.holiday_add'")[0]["detail"])
    assert len(detail["days"]) == 7 and detail["days"][0]["name"] == "National Day"


def test_exceptions_open_a_weekend_and_close_a_weekday(db: str) -> None:
    ok(db, "hours", "--days", "mon-fri", "--open", "08:00", "--close", "20:00")
    ok(db, "exception", "add", "2026-10-10", "--open", "09:00", "--close", "12:00", "--name", "make-up day")
    saturday = status(db, "2026-10-10 09:00")
    assert saturday["status"] == "open" and saturday["closes_at"] == "2026-10-10T12:00:00+08:00"
    assert saturday["name"] == "make-up day"
    ok(db, "exception", "add", "2026-09-29", "--closed", "--name", "system migration")
    tuesday = status(db, "2026-09-29 10:00")
    assert tuesday["status"] == "closed" and tuesday["holiday_name"] is None

    # `holiday remove` leaves exceptions alone; `exception remove` removes them.
    assert hotline_calendar(db, "holiday", "remove", "2026-09-29").exit_code == 1
    ok(db, "exception", "remove", "2026-09-29")
    assert status(db, "2026-09-29 10:00")["status"] == "open"

    # An exception on a holiday's date replaces the holiday, and says so.
    ok(db, "holiday", "add", "2026-12-25", "--name", "Christmas")
    added = ok(db, "exception", "add", "2026-12-25", "--open", "10:00", "--close", "14:00", "--json")
    assert added["days"][0]["replaced"]["kind"] == "holiday"
    assert status(db, "2026-12-25 10:00")["status"] == "open"


def test_a_line_overrides_all_lines(db: str) -> None:
    ok(db, "hours", "--days", "mon-fri", "--open", "08:00", "--close", "20:00")
    ok(db, "hours", "--days", "sat,sun", "--open", "00:00", "--close", "24:00", "--line", "95001")
    ok(db, "holiday", "add", "2026-10-01", "--name", "National Day")
    ok(db, "exception", "add", "2026-10-01", "--open", "09:00", "--close", "17:00", "--line", "95001")
    assert status(db, "2026-10-03 03:00")["status"] == "closed"
    assert status(db, "2026-10-03 03:00", "--line", "95001")["status"] == "open"
    assert status(db, "2026-10-01 10:00")["status"] == "holiday"
    assert status(db, "2026-10-01 10:00", "--line", "95001")["status"] == "open"
    assert status(db, "2026-10-03 03:00", "--line", "95000")["status"] == "closed"
    shown = ok(db, "show", "--json", "--all", "--line", "95001")
    assert shown["line"] == "95001" and shown["weekly"][5]["scope"] == "95001"
    assert {(d["scope"], d["in_effect"]) for d in shown["days"]} == {("*", False), ("95001", True)}

    async def through_a_pool() -> tuple[str, str]:
        """What the call server does per call: load from its pool, evaluate."""
        pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
        try:
            vip, general = await load_calendar(pool, "95001"), await load_calendar(pool, None)
        finally:
            await pool.close()
        when = datetime(2026, 10, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
        return vip.state(when).status, general.state(when).status
    assert asyncio.run(through_a_pool()) == ("open", "holiday")


def test_time_zone_is_validated_stored_and_used(db: str) -> None:
    ok(db, "hours", "--days", "mon-fri", "--open", "08:00", "--close", "20:00")
    out = ok(db, "timezone", "Europe/Berlin")
    assert "Europe/Berlin" in out
    assert ok(db, "timezone").strip() == "Europe/Berlin"
    state = status(db, "2026-03-30 08:00")  # read in Berlin summer time
    assert state["status"] == "open" and state["at"] == "2026-03-30T08:00:00+02:00"
    # An explicit offset is converted: 08:00 Shanghai is 02:00 in Berlin.
    assert status(db, "2026-03-30T08:00+08:00")["status"] == "closed"
    bad = hotline_calendar(db, "timezone", "Mars/Olympus_Mons")
    assert bad.exit_code == 1 and "unknown time zone" in bad.stderr
    assert ok(db, "timezone", "--json") == {"line": "*", "timezone": "Europe/Berlin"}
    detail = json.loads(query(db, "SELECT detail FROM audit_log WHERE action = 'calendar.timezone'")[0]["detail"])
    assert detail == {"scope": "*", "timezone": "Europe/Berlin", "previous": None}


@pytest.mark.parametrize(("args", "message"), [
    (["hours", "--days", "funday", "--open", "08:00", "--close", "20:00"], "bad day 'funday'"),
    (["hours", "--open", "08:00", "--close", "20:00"], "--days is required"),
    (["hours", "--days", "mon", "--open", "20:00", "--close", "08:00"], "not after opening time"),
    (["hours", "--days", "mon", "--open", "08:00"], "in pairs"),
    (["hours", "--days", "mon", "--open", "8am", "--close", "20:00"], "bad time '8am'"),
    (["hours", "--days", "mon", "--open", "08:00", "--close", "12:00", "--open", "11:00", "--close", "14:00"],
     "overlaps"),
    (["hours", "--days", "mon", "--closed", "--open", "08:00", "--close", "09:00"], "exactly one of"),
    (["hours", "--days", "mon", "--open", "08:00", "--close", "20:00", "--line", "95 001"], "bad line"),
    (["holiday", "add", "2026-02-30", "--name", "x"], "bad date '2026-02-30'"),
    (["holiday", "add", "2026-10-01"], "--name is required"),
    (["holiday", "add", "2026-10-07..2026-10-01", "--name", "x"], "ends before it starts"),
    (["exception", "add", "2026-12-31"], "--closed"),
    (["exception", "add", "2026-12-31", "--open", "12:00", "--close", "09:00"], "not after opening time"),
    (["exception", "add", "2026-12-31", "--open", "09:00"], "need both --open and --close"),
    (["exception", "remove", "2026-12-31"], "no exception on 2026-12-31"),
    (["timezone", "Asia/Shanghia"], "unknown time zone"),
    (["status", "--at", "Christmas"], "bad time 'Christmas'"),
])
def test_bad_input_exits_1_and_changes_nothing(db: str, args: list[str], message: str) -> None:
    result = hotline_calendar(db, *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert audit_actions(db) == []
    assert query(db, "SELECT 1 FROM calendar_weekly_hours UNION ALL SELECT 1 FROM calendar_days"
                     " UNION ALL SELECT 1 FROM calendar_settings") == []


def test_the_schema_refuses_insane_rows(db: str) -> None:
    async def main() -> None:
        async with connection(db) as conn:
            for sql in (
                "INSERT INTO calendar_weekly_hours (weekday, opens, closes) VALUES (0, '20:00', '08:00')",
                "INSERT INTO calendar_weekly_hours (weekday, opens, closes) VALUES (7, '08:00', '20:00')",
                "INSERT INTO calendar_weekly_hours (weekday, opens) VALUES (0, '08:00')",
                "INSERT INTO calendar_days (day, kind) VALUES ('2026-10-01', 'party')",
                "INSERT INTO calendar_days (day, kind) VALUES ('2026-10-01', 'open')",
                "INSERT INTO calendar_days (day, kind, opens, closes) VALUES ('2026-10-01', 'holiday', '08:00', '09:00')",
            ):
                with pytest.raises(asyncpg.CheckViolationError):
                    await conn.execute(sql)
            await conn.execute("INSERT INTO calendar_days (day, kind) VALUES ('2026-10-01', 'holiday')")
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute("INSERT INTO calendar_days (day, kind) VALUES ('2026-10-01', 'closed')")
    asyncio.run(main())


def test_unreachable_database_exits_3() -> None:
    result = hotline_calendar("postgresql://hotline@127.0.0.1:1/hotline", "status")
    assert result.exit_code == 3 and "cannot connect to PostgreSQL" in result.stderr


# -- one reading of local time: the calendar zone of the line concerned ----------------------------

def test_preview_cost_and_simulate_read_a_naive_at_in_the_lines_calendar_zone_as_status_does(db: str) -> None:
    ok(db, "timezone", "Europe/Berlin")
    ok(db, "hours", "--days", "mon-fri", "--open", "08:00", "--close", "20:00")
    ok(db, "publish", str(demo_flow_path()), command=menus)
    naive, berlin = ["--at", "2026-11-24 08:30"], ["--at", "2026-11-24T08:30+01:00"]  # a Tuesday, CET
    assert status(db, "2026-11-24 08:30")["status"] == "open"
    caller = ["--caller", "13111111111", "--line", "95000"]
    shown = ok(db, *caller, *naive, "--json", command=preview)
    assert shown["at"] == "2026-11-24T08:30:00+01:00" and shown["menu"] == "main"
    assert shown == ok(db, *caller, *berlin, "--json", command=preview)
    assert ok(db, *caller, *naive, "--json", command=cost) == ok(db, *caller, *berlin, "--json", command=cost)
    walked = ok(db, *caller, *naive, "--digits", "3", command=simulate)
    assert "path entry > greeting > segment > main > agent_cards" in walked


def stored_until(dsn: str) -> datetime:
    until: datetime = query(dsn, "SELECT until FROM emergencies WHERE ended_at IS NULL ORDER BY id DESC")[0]["until"]
    return until.astimezone(UTC)


def test_emergency_until_is_read_in_the_calendar_zone_of_its_line(db: str) -> None:
    ok(db, "timezone", "Europe/Berlin")
    ok(db, "timezone", "America/New_York", "--line", "95001")
    everywhere = ok(db, "on", "--sound", "emergency_default", "--until", "2030-01-15 08:00", command=emergency)
    assert "until 2030-01-15 08:00 CET" in everywhere
    assert stored_until(db) == datetime(2030, 1, 15, 7, 0, tzinfo=UTC)
    assert datetime.fromisoformat(status(db, "2030-01-15 08:00")["at"]) == stored_until(db)
    vip = ok(db, "on", "--sound", "emergency_default", "--line", "95001", "--until", "2030-01-15 08:00",
             command=emergency)
    assert "until 2030-01-15 08:00 EST" in vip
    assert stored_until(db) == datetime(2030, 1, 15, 13, 0, tzinfo=UTC)
    assert datetime.fromisoformat(status(db, "2030-01-15 08:00", "--line", "95001")["at"]) == stored_until(db)
    offset = ok(db, "on", "--sound", "emergency_default", "--until", "2030-01-15T08:00+08:00", command=emergency)
    assert "until 2030-01-15 08:00 UTC+08:00" in offset and stored_until(db) == datetime(2030, 1, 15, 0, 0, tzinfo=UTC)
    bad = hotline_calendar(db, "on", "--sound", "emergency_default", "--until", "soon", command=emergency)
    assert bad.exit_code == 1 and "bad time 'soon'" in bad.stderr


def test_notices_current_today_means_today_in_the_calendar_zone_not_the_databases(db: str) -> None:
    # The calendar is 26 hours behind the database session's zone: their dates always differ.
    ok(db, "timezone", "Etc/GMT+12")
    behind = f"{db}?timezone=Pacific/Kiritimati"
    today = datetime.now(ZoneInfo("Etc/GMT+12")).date().isoformat()
    ok(behind, "add", "--kind", "branch", "--text", "Branch closed today", "--from", today, "--to", today,
       command=notices)
    listed = ok(behind, "list", "--json", command=notices)
    assert [n["valid_to"] for n in listed] == [today]
