"""No journey is ever lost: the journey writer against real PostgreSQL that goes away and comes
back (through `tests/support/proxy.py`), restarts in between, and writes that can never succeed."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from agi_app.db.journey_spill import spill_dir_for
from agi_app.db.journey_writer import PgJourneySink
from agi_app.db.pool import connection, create_pool
from agi_app.db.repositories.calls import list_calls
from agi_app.engine.journey import JourneyRecord
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import fetch, import_demo_customers, settings_for, start_hotline
from tests.support.demo import KNOWN_ZH, MAIN_ZH, UNKNOWN
from tests.support.proxy import TcpProxy

T0 = datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))


def spill_files(tmp_path: Path) -> list[Path]:
    return sorted(spill_dir_for(str(tmp_path / "state")).glob("spill-*.jsonl"))


def writer(pool: asyncpg.Pool, tmp_path: Path, *, retry_for_s: float = 0.3, **kwargs: object) -> PgJourneySink:
    """A started writer spilling under `tmp_path`, quick to give up on a dead database."""
    sink = PgJourneySink(pool, budget_s=0.3, spill_dir=spill_dir_for(str(tmp_path / "state")),
                         retry_for_s=retry_for_s, **kwargs)  # type: ignore[arg-type]
    sink.start()
    return sink


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


def record_journey(sink: PgJourneySink, call_id: str, *, score: int | None = None) -> JourneyRecord:
    """A whole call through the sink protocol, as the engine reports it."""
    record = JourneyRecord(call_id, caller="13800138000", dnis="95000", started_at=T0, customer_id="C001",
                        segment="standard", language="zh", menu_version=1, path=["entry", "main", "accounts"],
                        services=[("balance", "ok")], outcome="transferred", transfer_target="cards",
                        duration_ms=30_000)
    sink.call_started(record)
    sink.call_identified(record)
    for seq, node in enumerate(record.path, start=1):
        sink.node_entered(call_id, seq, node, T0 + timedelta(seconds=seq))
    sink.node_input(call_id, 1, 2, "1", "option")
    sink.service_reached(call_id, 1, "balance", "ok")
    if score is not None:
        sink.survey_answer(call_id, "survey", score)
    sink.call_ended(record, T0 + timedelta(seconds=30))
    return record


async def assert_journey_found(dsn: str, record: JourneyRecord) -> None:
    async with connection(dsn) as conn:
        rows = await list_calls(conn, call_id=record.call_id)
        entered = [r["entered_at"] for r in await conn.fetch(
            "SELECT entered_at FROM call_nodes WHERE call_id = $1 ORDER BY seq", record.call_id)]
        times = await conn.fetchrow("SELECT started_at, ended_at FROM calls WHERE call_id = $1", record.call_id)
    assert rows, f"journey {record.call_id} lost"
    row = rows[0]
    assert row["customer_id"] == "C001" and row["segment"] == "standard" and row["menu_version"] == 1
    assert row["path"] == record.path
    assert row["inputs"] == [{"node": "main", "input": "1", "result": "option"}]
    assert row["services"] == [{"service": "balance", "result": "ok"}]
    assert row["outcome"] == "transferred" and row["transfer_target"] == "cards" and row["duration_ms"] == 30_000
    assert times["started_at"] == T0 and times["ended_at"] == T0 + timedelta(seconds=30), "datetimes round-trip"
    assert entered == [T0 + timedelta(seconds=s) for s in (1, 2, 3)]


async def drain(sink: PgJourneySink) -> None:
    """Wait until everything recorded is written (or refused for good), then stop the writer."""
    await asyncio.wait_for(sink.flush(), 15)
    await sink.close()


async def spilled_at_shutdown(dsn: str, proxy: TcpProxy, tmp_path: Path, prefix: str, count: int
                              ) -> list[JourneyRecord]:
    """`count` journeys recorded while the database is down, spilled when their writer stops."""
    pool = await create_pool(proxy.through(dsn), budget_s=0.3)
    sink = writer(pool, tmp_path, retry_for_s=60)  # no time to give up: shutdown spills
    proxy.go_down()
    records = [record_journey(sink, f"{prefix}-{n}") for n in range(count)]
    await sink.close()
    proxy.refuse = False
    await pool.close()
    return records


async def replay(dsn: str, tmp_path: Path) -> None:
    """The next writer, on a healthy database: it replays what was spilled."""
    async with await create_pool(dsn, budget_s=0.3) as pool:
        await drain(writer(pool, tmp_path))


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [m for m in caplog.messages if m.startswith(f"event={name} ")]


async def test_calls_during_an_outage_longer_than_the_retries_and_a_restart_are_all_found(
        fake_ari: FakeAri, dsn: str, db_proxy: TcpProxy, tmp_path: Path) -> None:
    await import_demo_customers(dsn)
    fake_ari.media_duration = lambda uri: 0.05
    settings = settings_for(fake_ari, db_proxy.through(dsn), tmp_path, journey_retry_s=0.3)
    first = await start_hotline(fake_ari, dsn, settings)
    db_proxy.go_down()
    calls = {}
    for caller, key in ((KNOWN_ZH, "3"), (UNKNOWN, "0")):
        call = await first.call(caller)
        await first.heard(call, MAIN_ZH)
        await fake_ari.press(call, key)
        await fake_ari.wait_for(lambda call=call: call not in first.server.calls.sessions)
        calls[call] = key
    await until(lambda: first.server.sink.spilled > 0)  # retried for longer than its budget: on disk now
    await first.stop()  # the server stops while the database is still down
    assert spill_files(tmp_path), "the journeys wait on disk"

    db_proxy.refuse = False
    second = await start_hotline(fake_ari, dsn, settings)
    try:
        for call, key in calls.items():
            row = await second.wait_ended(call)
            assert row["path"][0] == "entry" and row["path"][-1].startswith("agent_")
            assert [i["input"] for i in row["inputs"]] == [key]
            assert row["outcome"] == "transferred"
            assert row["transfer_target"] == ("cards" if key == "3" else "general")
        assert not spill_files(tmp_path), "a replayed spill file is removed"
    finally:
        await second.stop()


async def test_journeys_pending_at_shutdown_are_spilled_and_replayed_by_the_next_writer(
        dsn: str, db_proxy: TcpProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.journey")
    records = await spilled_at_shutdown(dsn, db_proxy, tmp_path, "shutdown", 3)
    files = spill_files(tmp_path)
    assert files and events(caplog, "journey_spilled")
    assert stat.S_IMODE(os.stat(files[0].parent).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
    assert not await fetch(dsn, "SELECT 1 FROM calls")

    await replay(dsn, tmp_path)
    for record in records:
        await assert_journey_found(dsn, record)
    assert not spill_files(tmp_path)
    assert events(caplog, "journey_replayed")


async def test_journeys_spilled_during_an_outage_are_written_when_the_database_returns(
        dsn: str, db_proxy: TcpProxy, tmp_path: Path) -> None:
    async with await create_pool(db_proxy.through(dsn), budget_s=0.3) as pool:
        sink = writer(pool, tmp_path)
        db_proxy.go_down()
        before = record_journey(sink, "outage-before-spill")
        await until(lambda: sink.spilled > 0)
        after = record_journey(sink, "outage-after-spill")
        db_proxy.refuse = False
        await drain(sink)
    await assert_journey_found(dsn, before)
    await assert_journey_found(dsn, after)
    assert not spill_files(tmp_path)


async def test_a_calls_rows_wait_for_its_calls_row_while_that_insert_keeps_failing(
        dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.journey")
    async with connection(dsn) as locker, await create_pool(dsn, budget_s=0.3) as pool:
        holding = locker.transaction()
        await holding.start()  # an uncommitted row with the same key: the writer's INSERT waits, times out
        await locker.execute("INSERT INTO calls (call_id, started_at) VALUES ('locked', now())")
        sink = writer(pool, tmp_path)
        record = record_journey(sink, "locked")
        await until(lambda: sink.spilled > 0)  # its INSERT failed for longer than the retries
        await holding.rollback()
        await drain(sink)
    await assert_journey_found(dsn, record)
    assert not events(caplog, "journey_write_failed"), "no child row went before its call's row"


async def test_a_truncated_last_line_in_a_spill_file_is_skipped_and_the_rest_replayed(
        dsn: str, db_proxy: TcpProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.journey")
    records = await spilled_at_shutdown(dsn, db_proxy, tmp_path, "crash", 2)
    with spill_files(tmp_path)[-1].open("ab") as f:  # the process died in the middle of a line
        f.write(b'{"op": "node_entered", "args": ["crash-1", 4, "agent')

    await replay(dsn, tmp_path)
    for record in records:
        await assert_journey_found(dsn, record)
    assert not spill_files(tmp_path)
    [skipped] = events(caplog, "journey_spill_line_skipped")
    assert "reason=truncated" in skipped


async def test_a_write_that_can_never_succeed_is_tried_once_and_does_not_hold_up_others(
        dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.journey")
    async with connection(dsn) as conn:  # counts attempts (a sequence ignores rollbacks)
        await conn.execute("""
            CREATE SEQUENCE survey_attempts;
            CREATE FUNCTION count_survey_attempt() RETURNS trigger LANGUAGE plpgsql AS
                $$ BEGIN PERFORM nextval('survey_attempts'); RETURN NEW; END $$;
            CREATE TRIGGER count_survey_attempt BEFORE INSERT ON survey_answers
                FOR EACH ROW EXECUTE FUNCTION count_survey_attempt();""")
    try:
        async with await create_pool(dsn, budget_s=0.3) as pool:
            sink = writer(pool, tmp_path)
            bad = record_journey(sink, "bad-score", score=9)  # the score CHECK refuses it forever
            good = record_journey(sink, "good")
            await drain(sink)
        attempts = await fetch(dsn, "SELECT last_value FROM survey_attempts")
    finally:
        async with connection(dsn) as conn:
            await conn.execute("DROP TRIGGER count_survey_attempt ON survey_answers;"
                               " DROP FUNCTION count_survey_attempt(); DROP SEQUENCE survey_attempts")
    await assert_journey_found(dsn, bad)
    await assert_journey_found(dsn, good)
    assert attempts[0]["last_value"] == 1, "a constraint violation is not retried"
    [failed] = events(caplog, "journey_write_failed")
    assert "call=bad-score" in failed and "op=survey_answer" in failed
    assert not spill_files(tmp_path)


async def test_a_full_queue_spills_to_disk_instead_of_dropping_journeys(
        dsn: str, db_proxy: TcpProxy, tmp_path: Path) -> None:
    async with await create_pool(db_proxy.through(dsn), budget_s=0.3) as pool:
        sink = writer(pool, tmp_path, retry_for_s=60, capacity=5)
        db_proxy.go_down()
        records = [record_journey(sink, f"burst-{n}") for n in range(4)]
        await until(lambda: bool(spill_files(tmp_path)))
        db_proxy.refuse = False
        await drain(sink)
    assert sink.dropped == 0
    for record in records:
        await assert_journey_found(dsn, record)


async def test_journeys_waiting_together_are_written_together(dsn: str, tmp_path: Path) -> None:
    statements: list[str] = []

    async def logged(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda query: statements.append(query.query))

    async with await create_pool(dsn, budget_s=0.3, on_connect=logged) as pool:
        sink = PgJourneySink(pool, budget_s=5.0)
        records = [record_journey(sink, f"together-{n}") for n in range(50)]  # 400 writes, before it starts
        sink.start()
        await drain(sink)
    for record in records:
        await assert_journey_found(dsn, record)
    writes = [s for s in statements if s.startswith(("INSERT", "UPDATE"))]
    assert len(writes) <= 2 * 6, f"one statement per kind of write and batch, not per write: {len(writes)}"


async def test_a_write_refused_among_others_of_its_kind_is_the_only_one_given_up(
        dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.journey")
    async with await create_pool(dsn, budget_s=0.3) as pool:
        sink = PgJourneySink(pool, budget_s=5.0)
        records = [record_journey(sink, f"scored-{n}", score=9 if n == 3 else 4) for n in range(6)]
        sink.start()
        await drain(sink)
    for record in records:
        await assert_journey_found(dsn, record)
    scores = await fetch(dsn, "SELECT call_id, score FROM survey_answers ORDER BY call_id")
    assert [(r["call_id"], r["score"]) for r in scores] == [(f"scored-{n}", 4) for n in (0, 1, 2, 4, 5)]
    [failed] = events(caplog, "journey_write_failed")
    assert "call=scored-3" in failed and "op=survey_answer" in failed
