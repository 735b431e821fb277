"""Alerts: the rules on their own (failures in a row, error rate over a window, lookups past their
budget, backlog), then a real server (fake ARI, real PostgreSQL) raising and clearing an ARI
disconnection in the database and `hotline alerts list`, and clearing what is active when it stops."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agi_app.analytics.alerts import AlertEvent, AlertRules, Band, Thresholds
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import settings_for, start_hotline
from tests.support.cli import hotline_cli

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RULES = Thresholds(window_s=60, error_rate=Band(0.10, 0.25), min_calls=10, consecutive=Band(3, 5),
                   lookup_timeouts=Band(2, 4), backlog=Band(100, 1000))


def evaluate(rules: AlertRules, at: datetime, *, ari_up: bool = True, backlog: float = 0,
             lookup_timeouts: float = 0) -> list[AlertEvent]:
    return rules.evaluate(at, ari_up=ari_up, backlog=backlog, lookup_timeouts=lookup_timeouts)


def changes(events: list[AlertEvent]) -> list[tuple[str, str, str | None]]:
    return [(e.key, e.change, e.level) for e in events]


def rates(events: list[AlertEvent]) -> list[AlertEvent]:
    return [e for e in events if e.rule == "error_rate"]


def test_failures_in_a_row_on_a_line_raise_then_escalate_and_one_success_clears() -> None:
    rules = AlertRules(RULES, lambda: {"95000"})
    for i in range(5):
        rules.call_ended(f"c{i}", "95000", "error", T0)
        if i == 1:
            assert changes(rules.book.drain()) == [], "two in a row is below the warning"
    assert changes(rules.book.drain()) == [("consecutive_failures:line:95000", "raised", "warning"),
                                           ("consecutive_failures:line:95000", "escalated", "critical")]
    rules.call_ended("c5", "95000", "self_service", T0)
    cleared = rules.book.drain()
    assert changes(cleared) == [("consecutive_failures:line:95000", "cleared", None)]
    assert cleared[0].message == "line 95000 works again"
    rules.call_ended("c6", "95000", "error", T0)
    rules.call_ended("c7", "95000", "error", T0)
    assert rules.book.drain() == [], "the count starts again after a success"


def test_a_number_the_menus_do_not_know_is_judged_as_other() -> None:
    rules = AlertRules(RULES, lambda: {"95000"})
    for i in range(3):
        rules.call_ended(f"c{i}", f"1234{i}", "error", T0)
    assert changes(rules.book.drain()) == [("consecutive_failures:line:other", "raised", "warning")]


def test_failures_at_a_node_raise_and_a_call_moving_on_from_it_clears() -> None:
    rules = AlertRules(RULES)
    for i in range(3):
        rules.node_entered(f"c{i}", "pay_bill", T0)
        rules.service_result(f"c{i}", "failed", T0)
        rules.call_ended(f"c{i}", "95000", "hangup", T0)  # the caller gave up: not a line failure
    assert changes(rules.book.drain()) == [("consecutive_failures:node:pay_bill", "raised", "warning")]
    rules.node_entered("c9", "pay_bill", T0)
    rules.service_result("c9", "refused", T0)  # the bank said no: the node worked
    assert rules.book.drain() == []
    rules.node_entered("c9", "goodbye", T0)
    assert changes(rules.book.drain()) == [("consecutive_failures:node:pay_bill", "cleared", None)]


def test_the_error_rate_over_the_window() -> None:
    rules = AlertRules(RULES)
    for i in range(9):
        rules.call_ended(f"c{i}", "95000", "error" if i < 3 else "transferred", T0 + timedelta(seconds=i))
    assert changes(rates(evaluate(rules, T0 + timedelta(seconds=10)))) == [], "9 calls: fewer than min_calls"
    rules.call_ended("c9", "95000", "self_service", T0 + timedelta(seconds=10))
    raised = rates(evaluate(rules, T0 + timedelta(seconds=11)))
    assert changes(raised) == [("error_rate", "raised", "critical")] and raised[0].value == 0.3
    assert raised[0].message == "3 of 10 calls failed in the last 60 s"
    # The three failures (seconds 0-2) leave the window; seven good calls remain: too few to judge.
    later = T0 + timedelta(seconds=62.5)
    assert changes(rates(evaluate(rules, later))) == [("error_rate", "cleared", None)]
    for i in range(10, 20):
        rules.call_ended(f"c{i}", "95000", "self_service", later)
    rules.call_ended("c20", "95000", "error", later)
    assert rates(evaluate(rules, later)) == []  # 1 of 18: 5.6 %, below the warning
    rules.call_ended("c21", "95000", "error", later)
    assert changes(rates(evaluate(rules, later))) == [("error_rate", "raised", "warning")]  # 2 of 19: 10.5 %


def test_lookups_past_their_budget_count_within_the_window() -> None:
    rules = AlertRules(RULES)
    assert evaluate(rules, T0, lookup_timeouts=7) == [], "timeouts before the first look are not recent"
    assert changes(evaluate(rules, T0 + timedelta(seconds=10), lookup_timeouts=9)) == [
        ("lookup_timeouts", "raised", "warning")]
    assert changes(evaluate(rules, T0 + timedelta(seconds=20), lookup_timeouts=11)) == [
        ("lookup_timeouts", "escalated", "critical")]
    assert changes(evaluate(rules, T0 + timedelta(seconds=75), lookup_timeouts=11)) == [
        ("lookup_timeouts", "eased", "warning")]  # the 2 of 0-10 s are out; 2 since 10 s remain
    assert changes(evaluate(rules, T0 + timedelta(seconds=90), lookup_timeouts=11)) == [
        ("lookup_timeouts", "cleared", None)]


def test_ari_and_the_journey_backlog() -> None:
    rules = AlertRules(RULES)
    assert changes(evaluate(rules, T0, ari_up=False, backlog=150)) == [("ari_disconnected", "raised", "critical"),
                                                                        ("journey_backlog", "raised", "warning")]
    assert changes(evaluate(rules, T0, ari_up=True, backlog=5)) == [("ari_disconnected", "cleared", None),
                                                                     ("journey_backlog", "cleared", None)]


def test_a_threshold_of_zero_turns_its_level_off() -> None:
    assert Band(0, 5).level(4) is None and Band(0, 5).level(5) == "critical" and Band(3, 0).level(99) == "warning"


def alerts_list(dsn: str, *args: str) -> list[dict[str, object]]:
    result = hotline_cli(dsn, "alerts", "list", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def until_stored(dsn: str, check: object, timeout: float = 10.0) -> list[dict[str, object]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await asyncio.to_thread(alerts_list, dsn)
        if check(rows):  # type: ignore[operator]
            return rows
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.2)


async def test_a_server_raises_and_clears_an_ari_disconnection(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    hotline = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, alert_eval_ms=50))
    try:
        refused = fake_ari.fault("GET", r"/events", status=500, times=None)
        await fake_ari.drop_websocket()
        rows = await until_stored(dsn, lambda rows: any(r["alert"] == "ari_disconnected" for r in rows))
        raised = next(r for r in rows if r["alert"] == "ari_disconnected")
        assert (raised["change"], raised["level"], raised["active"]) == ("raised", "critical", True)
        active = await asyncio.to_thread(alerts_list, dsn, "--active")
        assert [r["alert"] for r in active] == ["ari_disconnected"]
        fake_ari.faults.remove(refused)
        rows = await until_stored(dsn, lambda rows: rows and rows[0]["change"] == "cleared", timeout=20)
        assert [(r["alert"], r["change"], r["active"]) for r in rows] == [
            ("ari_disconnected", "cleared", False), ("ari_disconnected", "raised", False)]
        assert await asyncio.to_thread(alerts_list, dsn, "--active") == []
        text = hotline_cli(dsn, "alerts", "list").stdout
        assert "cleared   -        ari_disconnected  the ARI event stream is connected" in text
    finally:
        await hotline.stop()


async def test_a_stopping_server_clears_its_active_alerts(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    hotline = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, alert_eval_ms=50,
                                                              alert_backlog_warning=0, alert_backlog_critical=0))
    assert hotline.server.alerts is not None
    hotline.server.alerts.rules.call_ended("x", "95000", "error", datetime.now(UTC))
    for i in range(2):
        hotline.server.alerts.rules.call_ended(f"y{i}", "95000", "error", datetime.now(UTC))
    await until_stored(dsn, lambda rows: any(r["active"] for r in rows))
    await hotline.stop()
    assert await asyncio.to_thread(alerts_list, dsn, "--active") == []
    rows = await asyncio.to_thread(alerts_list, dsn)
    assert rows[0]["alert"] == "consecutive_failures:line:95000" and rows[0]["message"] == "the server stopped"
