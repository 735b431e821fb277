"""The calendar, emergencies and notices a running server keeps in memory: read once, not per
call; any change — a `hotline` command, plain SQL — announced by the database's triggers and heard
by the next call within a second; never trusted while the server cannot hear those announcements.
And the one rule both the database read and the cache choose an emergency and notices by."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import asyncpg
import pytest_asyncio

from agi_app.calendar.model import DayRule
from agi_app.db.pool import connection, create_pool
from agi_app.db.repositories import calendar as calendar_repo
from agi_app.db.repositories import operations
from agi_app.db.start_facts_cache import CHANNEL, StartFactsCache
from agi_app.operations.model import (
    Emergency,
    Notice,
    ScheduledEmergency,
    ScheduledNotice,
    live_emergency,
    valid_notices,
)
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, settings_for, start_hotline
from tests.support.demo import MAIN_ZH, UNKNOWN
from tests.support.proxy import TcpProxy

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
EMERGENCY_SOUND = "sound:hotline/zh/emergency_default"


def _emergency(id_: int, line: str | None, *, starts: int = -60, until: int | None = None) -> ScheduledEmergency:
    return ScheduledEmergency(id_, line, NOW + timedelta(minutes=starts),
                              None if until is None else NOW + timedelta(minutes=until),
                              Emergency({"zh": f"e{id_}", "en": None}, None))


def test_the_line_s_own_emergency_wins_then_the_newest_and_only_within_its_times() -> None:
    rows = [_emergency(1, None), _emergency(2, None), _emergency(3, "95001"), _emergency(4, "95002", starts=5),
            _emergency(5, "95000", until=0)]
    assert live_emergency(rows, "95001", NOW) == rows[2].emergency
    assert live_emergency(rows, "95000", NOW) == rows[1].emergency, "newest all-lines; 5 ended at NOW"
    assert live_emergency(rows, "95002", NOW) == rows[1].emergency, "4 has not started yet"
    assert live_emergency(rows, "95002", NOW + timedelta(minutes=5)) == rows[3].emergency
    assert live_emergency([], "95000", NOW) is None


def test_notices_valid_on_the_day_and_line_by_priority_then_age() -> None:
    def notice(id_: int, line: str | None, first: int, last: int, priority: int) -> ScheduledNotice:
        day = NOW.date()
        return ScheduledNotice(id_, line, day + timedelta(days=first), day + timedelta(days=last), priority,
                               Notice("other", {"zh": f"n{id_}"}, None))

    rows = [notice(1, None, 0, 0, 0), notice(2, None, -3, 3, 5), notice(3, "95001", 0, 1, 0),
            notice(4, None, 1, 2, 9), notice(5, None, -2, -1, 9), notice(6, None, 0, 0, 5)]
    assert [n.texts["zh"] for n in valid_notices(rows, "95000", NOW.date())] == ["n2", "n6", "n1"]
    assert [n.texts["zh"] for n in valid_notices(rows, "95001", NOW.date())] == ["n2", "n6", "n1", "n3"]


async def test_migration_triggers_announce_every_change_to_the_start_facts(dsn: str) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    async with connection(dsn) as listener, connection(dsn) as conn:
        await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
        await operations.add_notice(conn, kind="other", line=None, text_zh="通知", text_en=None, sound=None,
                                    valid_from=NOW.date(), valid_to=NOW.date(), priority=0, actor="test")
        await operations.switch_on_emergency(conn, line=None, text_zh="维护", text_en=None, sound=None, until=None,
                                             actor="test")
        await calendar_repo.put_day(conn, DayRule(date(2026, 12, 25), "holiday", "Holiday"))
        await calendar_repo.set_weekly_hours(conn, "*", [0], [(time(8), time(20))])
        await calendar_repo.set_timezone(conn, "*", "Asia/Shanghai")
        tables: set[str] = set()
        while len(tables) < 5:
            tables.add(await asyncio.wait_for(heard.get(), 1.0))
        while not heard.empty():
            heard.get_nowait()
        await conn.execute("TRUNCATE notices")  # as the tests' reset does
        assert await asyncio.wait_for(heard.get(), 1.0) == "notices"
    assert set(tables) == {"notices", "emergencies", "calendar_days", "calendar_weekly_hours", "calendar_settings"}


async def _until(predicate: object, timeout: float = 1.0) -> None:  # noqa: ASYNC109 - a test's bound
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.005)


async def _first_prompt(hotline: Hotline) -> str:
    call = await hotline.call(UNKNOWN)
    await hotline.ari.wait_for(lambda: bool(hotline.played(call)))
    first = hotline.played(call)[0]
    await hotline.ari.hangup(call)
    await hotline.wait_ended(call)
    return first


async def test_a_change_reaches_the_next_call_within_a_second_and_unchanged_facts_are_not_read_again(
        hotline: Hotline) -> None:
    cache = hotline.server.facts
    assert cache is not None
    await _until(lambda: cache.trusted, timeout=5.0)
    assert await _first_prompt(hotline) != EMERGENCY_SOUND
    await _first_prompt(hotline)
    assert cache.reads == 1, "the second call read nothing"
    async with connection(hotline.dsn) as conn:  # plain SQL, as another server or an operator would
        await operations.switch_on_emergency(conn, line=None, text_zh=None, text_en=None,
                                             sound="emergency_default", until=None, actor="test")
    await _until(lambda: not cache.filled)  # announced: dropped within a second
    assert await _first_prompt(hotline) == EMERGENCY_SOUND
    assert cache.reads == 2
    async with connection(hotline.dsn) as conn:
        await operations.switch_off_emergency(conn, line=None, all_lines=True)
    await _until(lambda: not cache.filled)
    call = await hotline.call(UNKNOWN)
    await hotline.heard(call, MAIN_ZH)
    assert EMERGENCY_SOUND not in hotline.played(call)


async def test_while_the_announcements_cannot_be_heard_each_call_reads_the_database(hotline: Hotline) -> None:
    cache = hotline.server.facts
    assert cache is not None
    await _until(lambda: cache.trusted, timeout=5.0)
    await _first_prompt(hotline)
    async with connection(hotline.dsn) as conn:  # the listening connection is cut
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE query LIKE 'LISTEN%' AND datname = current_database()")
        await _until(lambda: not cache.trusted)
        await operations.switch_on_emergency(conn, line=None, text_zh=None, text_en=None,
                                             sound="emergency_default", until=None, actor="test")
    assert await _first_prompt(hotline) == EMERGENCY_SOUND, "a change nobody announced is still heard"
    await _until(lambda: cache.trusted, timeout=5.0)  # listening again, the cache serves again


@pytest_asyncio.fixture
async def slow_pool(db_proxy: TcpProxy, dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_proxy.through(dsn))
    yield pool
    await pool.close()


async def test_a_read_overtaken_by_a_change_serves_only_the_calls_that_waited_for_it(
        slow_pool: asyncpg.Pool, db_proxy: TcpProxy, dsn: str) -> None:
    cache = StartFactsCache(slow_pool, budget_s=5.0)
    cache.listening()
    db_proxy.delay = 0.1
    waiting = asyncio.ensure_future(cache.emergency("95000", datetime.now(UTC)))
    await asyncio.sleep(0.05)  # its read is under way, slowly
    cache.invalidate()  # as the listener does when the change below is announced
    async with connection(dsn) as conn:
        await operations.switch_on_emergency(conn, line=None, text_zh="维护", text_en=None, sound=None,
                                             until=None, actor="test")
    await waiting  # read before the change, or during it: fine for a call that started before it
    assert not cache.filled and cache.reads == 0, "not kept for later calls"
    db_proxy.delay = 0.0
    after = await cache.emergency("95000", datetime.now(UTC))
    assert after is not None and after.texts["zh"] == "维护"
    assert cache.reads == 1
    await cache.close()


async def test_a_change_reaches_every_server_sharing_the_database(hotline: Hotline, tmp_path: Path) -> None:
    other_ari = FakeAri()
    await other_ari.start()
    other_ari.media_duration = lambda uri: 0.05
    other = await start_hotline(other_ari, hotline.dsn, settings_for(other_ari, hotline.dsn, tmp_path / "other"))
    try:
        caches = [line.server.facts for line in (hotline, other)]
        assert all(caches)
        await _until(lambda: all(c.trusted for c in caches if c), timeout=5.0)
        for line in (hotline, other):
            await _first_prompt(line)
        assert all(c.filled for c in caches if c)
        async with connection(hotline.dsn) as conn:
            await operations.add_notice(conn, kind="fee", line=None, text_zh=None, text_en=None,
                                        sound="announcement_rates", valid_from=date.today() - timedelta(days=1),
                                        valid_to=date.today() + timedelta(days=1), priority=0, actor="test")
        await _until(lambda: not any(c.filled for c in caches if c))
        for line in (hotline, other):
            call = await line.call(UNKNOWN)
            await line.heard(call, "sound:hotline/zh/announcement_rates")
    finally:
        await other.stop()
        await other_ari.stop()
    assert not other_ari.violations
