"""Today's totals on the live view come from the journeys in PostgreSQL: the bank's local day (the
calendar's time zone), every server's calls, the same after a restart; a database that does not
answer leaves the live part moving and the totals marked stale, never shown as current."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from agi_app.cli.monitor import frame, read, totals_line
from agi_app.config import Settings
from agi_app.db.pool import connection
from agi_app.monitoring import live_store
from agi_app.monitoring.day_totals import DayTotals, DayTotalsKeeper, read_day_totals
from agi_app.monitoring.live import LiveView, merge
from agi_app.monitoring.publisher import LivePublisher
from agi_app.monitoring.wallboard import Wallboard
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, import_demo_customers, settings_for, start_hotline
from tests.fast.test_live_monitor import wallboard_at
from tests.support.cli import hotline_cli
from tests.support.demo import MAIN_ZH, UNKNOWN
from tests.support.journeys import SHANGHAI, Call, Leg, store
from tests.support.proxy import TcpProxy

MIDNIGHT = datetime.combine(datetime(2026, 11, 24).date(), time(0), SHANGHAI)  # 2026-11-23 16:00 UTC


def call(call_id: str, at: datetime, outcome: str | None = "self_service", *, failed: bool = False,
         queued: bool = False) -> Call:
    """A stored journey: `failed` adds a failed service, `queued` a hand-off to an agent queue."""
    made = Call(call_id, at.astimezone(UTC), "95000", None, outcome, 1000, ["main"],
                [("balance", "failed")] if failed else [], None)
    if queued:
        made.legs.append(Leg("general", "completed", "alice", 5, 30))
    return made


async def totals_at(dsn: str, at: datetime) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return (await read_day_totals(conn, at)).as_json()
    finally:
        await conn.close()


async def test_a_call_belongs_to_the_bank_day_it_started_on_either_side_of_local_midnight(dsn: str) -> None:
    await store(dsn, [
        call("late", MIDNIGHT - timedelta(seconds=1), "error", failed=True),  # 15:59:59 UTC, the 23rd everywhere
        call("first", MIDNIGHT, "transferred", queued=True),  # 16:00 UTC: still the 23rd in UTC
        call("later", MIDNIGHT + timedelta(hours=7), failed=True),
        call("still-on", MIDNIGHT + timedelta(hours=8), None),  # in progress: live, not a total
    ])
    tuesday = await totals_at(dsn, MIDNIGHT + timedelta(hours=10))
    assert (tuesday["day"], tuesday["timezone"]) == ("2026-11-24", "Asia/Shanghai")
    assert (tuesday["calls"], tuesday["to_agents"], tuesday["errors"], tuesday["service_failures"]) == (2, 1, 0, 1)
    assert tuesday["outcomes"] == {"self_service": 1, "transferred": 1}
    monday = await totals_at(dsn, MIDNIGHT - timedelta(milliseconds=1))
    assert (monday["day"], monday["calls"], monday["errors"], monday["service_failures"]) == ("2026-11-23", 1, 1, 1)

    kpi = hotline_cli(dsn, "kpi", "--day", "2026-11-24", "--json")
    assert kpi.returncode == 0, kpi.stderr
    assert json.loads(kpi.stdout)["outcomes"] == {
        "self_service": 1, "transferred": 1, "abandoned": 0, "hangup": 0, "error": 0}, "the day hotline kpi counts"

    assert hotline_cli(dsn, "calendar", "timezone", "Europe/London").returncode == 0
    london = await totals_at(dsn, MIDNIGHT + timedelta(hours=10))  # 02:00 on the 24th in London
    assert (london["day"], london["timezone"], london["calls"]) == ("2026-11-24", "Europe/London", 0)
    assert (await totals_at(dsn, MIDNIGHT))["calls"] == 3, "the 23rd in London: 15:59:59, 16:00 and 23:00 UTC"


def started_now(call_id: str, **kwargs: Any) -> Call:
    return call(call_id, datetime.now(UTC) - timedelta(seconds=2), **kwargs)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.05)


def merged_totals(line: Hotline) -> dict[str, Any]:
    publisher = line.server.monitoring.live if line.server.monitoring else None
    assert publisher is not None
    return (publisher.merged or {}).get("totals") or {}


async def test_a_restarted_server_shows_the_same_totals_with_every_servers_calls(
        fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    await import_demo_customers(dsn)
    settings = settings_for(fake_ari, dsn, tmp_path, live_publish_ms=100)
    first = await start_hotline(fake_ari, dsn, settings)
    try:
        placed = await first.call(UNKNOWN)
        await first.heard(placed, MAIN_ZH)
        await first.ari.hangup(placed)
        await first.wait_ended(placed)
        await until(lambda: merged_totals(first).get("calls") == 1)
        # Another server on the same database: its live row (a call in progress there) and the
        # journeys its own writer stored.
        other = {"server": "other:2", "at": datetime.now(UTC).isoformat(), "calls": [
            {"call_id": "there", "caller": "*******2222", "line": "95001", "started_at": "x", "node": "main",
             "in_node_s": 1.0, "last_activity": "entered main", "last_activity_at": "x"}], "lines": {"95001": 1}}
        async with connection(dsn) as conn:
            await live_store.publish(conn, "other:2", other)
        await store(dsn, [started_now("elsewhere-1", queued=True, outcome="transferred"),
                          started_now("elsewhere-2", outcome="error", failed=True)])
        await until(lambda: (merged_totals(first).get("calls"), merged_totals(first).get("to_agents")) == (3, 1))
        before = merged_totals(first)
        merged = first.server.monitoring.live.merged if first.server.monitoring and first.server.monitoring.live else None
        assert merged is not None and [c["call_id"] for c in merged["calls"]] == ["there"], "the other's live call"
        assert len(merged["servers"]) == 2 and "other:2" in {s["server"] for s in merged["servers"]}
    finally:
        await first.stop()

    second = await start_hotline(fake_ari, dsn, settings)
    try:
        await until(lambda: merged_totals(second).get("known") is True)
        after = merged_totals(second)
    finally:
        await second.stop()
    counted = ("calls", "to_agents", "errors", "service_failures", "outcomes")
    assert {k: after[k] for k in counted} == {k: before[k] for k in counted}, "nothing forgotten by the restart"
    assert (after["calls"], after["to_agents"], after["errors"], after["service_failures"]) == (3, 1, 1, 1)
    assert after["stale"] is False


async def test_monitor_json_counts_the_days_journeys_with_no_server_running(dsn: str) -> None:
    await store(dsn, [started_now("a"), started_now("b", outcome="error"), started_now("c", outcome=None)])
    done = hotline_cli(dsn, "monitor", "--json")
    assert done.returncode == 0, done.stderr
    totals = json.loads(done.stdout)["totals"]
    assert (totals["known"], totals["stale"], totals["calls"], totals["errors"]) == (True, False, 2, 1)
    once = hotline_cli(dsn, "monitor", "--once")
    assert once.returncode == 0 and "calls today 2" in once.stdout and "STALE" not in once.stdout, once.stdout


async def test_a_dead_database_leaves_the_calls_moving_and_the_totals_marked_stale(
        dsn: str, db_proxy: TcpProxy) -> None:
    await store(dsn, [started_now("done-before")])
    view = LiveView()
    view.started("c1", "13800138000", "95000", datetime.now(UTC))

    async def snapshot() -> dict[str, Any]:
        return view.snapshot({"c1", "c2"})

    pool = await asyncpg.create_pool(db_proxy.through(dsn), min_size=1, max_size=2)
    publisher = LivePublisher(pool, snapshot, server_id="test:1", every_s=1, budget_s=0.5, stale_s=5)
    try:
        await publisher.round()
        assert publisher.merged is not None
        fresh = publisher.merged["totals"]
        assert (fresh["known"], fresh["stale"], fresh["calls"]) == (True, False, 1)
        assert publisher.merged["all_servers"] is True

        db_proxy.go_down()
        view.started("c2", "13911112222", "95001", datetime.now(UTC))
        view.entered("c1", "main", datetime.now(UTC))
        started = asyncio.get_running_loop().time()
        await publisher.round()
        assert asyncio.get_running_loop().time() - started < 1.5, "a round waits for its budgets, no more"
        down = publisher.merged
        assert [(c["call_id"], c["node"]) for c in down["calls"]] == [("c1", "main"), ("c2", "")], "still live"
        assert down["lines"] == {"95000": 1, "95001": 1} and down["all_servers"] is False
        stale = down["totals"]
        assert (stale["known"], stale["stale"], stale["calls"]) == (True, True, 1), "the last totals, said stale"
        assert stale["as_of"] == fresh["as_of"]
        assert "STALE: as of" in totals_line(stale).plain

        db_proxy.refuse = False
        await until_round(publisher, lambda m: m["totals"]["stale"] is False)
        assert publisher.merged["all_servers"] is True
    finally:
        await publisher.close()
        await pool.close()


async def until_round(publisher: LivePublisher, check: Callable[[dict[str, Any]], bool]) -> None:
    for _ in range(20):
        await publisher.round()
        if publisher.merged is not None and check(publisher.merged):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not seen: {publisher.merged}")


async def test_totals_that_never_arrived_are_unknown_while_the_live_rows_still_show(
        dsn: str, db_proxy: TcpProxy) -> None:
    """`hotline monitor`'s read: the live rows within the database budget, the totals within the live
    budget; a database too slow for the second shows the first and says the totals are unknown."""
    await store(dsn, [started_now("done-before")])
    conn = await asyncpg.connect(db_proxy.through(dsn))
    try:
        keeper = DayTotalsKeeper()
        quick = Settings(db_budget_ms=5000, live_budget_ms=2000)
        assert (await read(conn, quick, keeper))["totals"]["calls"] == 1
        db_proxy.delay = 0.3
        slow = Settings(db_budget_ms=5000, live_budget_ms=100)
        view = await read(conn, slow, DayTotalsKeeper())
        assert view["totals"] == {"known": False, "stale": True, "as_of": None}
        assert view["calls"] == [] and view["servers"] == []
        shown = frame(view)
        assert "totals today unknown" in " ".join(str(part) for part in shown.renderables)
    finally:
        db_proxy.delay = 0
        conn.terminate()


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
async def test_the_wallboard_shows_stale_totals_as_stale_and_unknown_ones_as_unknown(tmp_path: Path) -> None:
    """The page in headless chromium: current totals plainly, stale ones with a warning and the time
    they were read, unknown ones as "?" — and the calls still listed while the database is away."""
    async_api = pytest.importorskip("playwright.async_api")
    keeper = DayTotalsKeeper()
    read_at = datetime(2026, 11, 24, 1, 30, tzinfo=UTC)
    current = keeper.read(DayTotals(read_at.astimezone(SHANGHAI).date(), "Asia/Shanghai",
                                    {"self_service": 9, "error": 3}, 4, 2), read_at)
    view = LiveView()
    view.started("c1", "13800138000", "95000", datetime.now(UTC))
    shown = {"view": merge([{"server": "a", "at": "1", **view.snapshot({"c1"})}], current)}
    board = Wallboard(lambda: shown["view"], every_s=0.05, write_budget_s=1)
    async with wallboard_at(board) as base, async_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/wallboard")
            expect = async_api.expect
            await expect(page.locator("#calls-today")).to_have_text("12")
            await expect(page.locator("#errors")).to_have_text("3")
            await expect(page.locator("#totals-note")).to_have_text("today 2026-11-24 (Asia/Shanghai)")
            await expect(page.locator("#calls-today")).not_to_have_class("stale")

            shown["view"] = {**merge([{"server": "a", "at": "2", **view.snapshot({"c1"})}], keeper.failed()),
                             "all_servers": False}
            await expect(page.locator("#totals-note")).to_contain_text("STALE: as of 2026-11-24T01:30:00+00:00")
            await expect(page.locator("#calls-today")).to_have_text("12")
            await expect(page.locator("#calls-today")).to_have_class("stale")
            await expect(page.locator("#scope-note")).to_have_text(
                "the database does not answer: this server's calls only")
            await expect(page.locator("#calls tbody tr")).to_have_count(1)
            await page.screenshot(path=str(tmp_path / "stale.png"))

            shown["view"] = merge([], DayTotalsKeeper().failed())
            await expect(page.locator("#calls-today")).to_have_text("?")
            await expect(page.locator("#totals-note")).to_contain_text("totals today unknown")
        finally:
            await browser.close()
    assert (tmp_path / "stale.png").stat().st_size > 0
