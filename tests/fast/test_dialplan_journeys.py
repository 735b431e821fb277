"""Calls no application ran — the fallback while `hotline serve` was down, line 95002's plain
dialplan — get their journey too: the dialplan writes a line when the caller hangs up, and
`hotline serve` imports the file into PostgreSQL, once, whenever the database answers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from agi_app.centre.dialplan_journeys import BadJourneyLine, parse_line
from agi_app.db.failures import DB_FAILURES
from agi_app.db.pool import create_pool
from agi_app.serve.dialplan_journeys import CURRENT, DialplanJourneyImporter
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import fetch, running_hotline, settings_for
from tests.support.proxy import TcpProxy

T0 = 1_795_000_000.0  # 2026-11-18


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The dialplan's journeys folder (Asterisk's ${ASTSPOOLDIR}/journeys)."""
    made = tmp_path / "journeys"
    made.mkdir()
    return made


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    opened = await create_pool(dsn, budget_s=1.0)
    yield opened
    await opened.close()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def line(**fields: object) -> str:
    """A journey line as the dialplan writes it (`[hotline-dialplan-journey]`)."""
    base: dict[str, object] = {"v": 1, "id": "1795000000.17", "line": "95000", "way": "fallback:app-down",
                               "arrived": f"{T0:.3f}", "ended": f"{T0 + 40.5:.3f}", "caller": "13800138000"}
    base.update(fields)
    return "|".join(f"{k}={v}" for k, v in base.items() if v is not None) + "\n"


def test_a_fallback_caller_who_talked_to_an_agent() -> None:
    j = parse_line(line(language="zh", queue="general-zh", joined=f"{T0 + 8:.3f}", status="", agent="agent-1001",
                        held="12", talked=""))
    assert (j.call_id, j.line, j.caller, j.way) == ("1795000000.17", "95000", "13800138000", "fallback:app-down")
    assert j.started_at == datetime.fromtimestamp(T0, UTC) and j.duration_ms == 40_500
    assert (j.outcome, j.transfer_target, j.language, j.customer_id) == ("transferred", "fallback:app-down", "zh", None)
    assert j.leg is not None
    # the caller hung up on the agent: the talk is what is left after the wait
    assert (j.leg.group, j.leg.agent, j.leg.wait_s, j.leg.talk_s, j.leg.result) == (
        "general-zh", "agent-1001", 12, 20, "completed")


def test_a_95002_caller_routed_by_the_hooks_whom_the_agent_hung_up_on() -> None:
    j = parse_line(line(line="95002", way="dialplan", customer="C002", segment="vip", language="en", queue="vip",
                        joined=f"{T0 + 9:.3f}", status="", agent="agent-1003", held="4", talked="25"))
    assert (j.outcome, j.transfer_target, j.customer_id, j.segment) == ("transferred", "queue:vip", "C002", "vip")
    assert j.leg is not None and (j.leg.wait_s, j.leg.talk_s) == (4, 25)


@pytest.mark.parametrize(("status", "left", "result", "wait_s"), [
    ("", None, "abandoned", 32),  # hung up waiting: the leg ends with the call
    ("TIMEOUT", T0 + 38.5, "timeout", 30),  # then "no agent is free", goodbye: not part of the wait
    ("JOINEMPTY", T0 + 8.5, "failed", 0)])
def test_a_caller_nobody_answered(status: str, left: float | None, result: str, wait_s: int) -> None:
    j = parse_line(line(queue="general-en", joined=f"{T0 + 8.5:.3f}", left=left and f"{left:.3f}", status=status,
                        agent="", held="", talked=""))
    assert j.outcome == "transferred" and j.leg is not None
    assert (j.leg.agent, j.leg.result, j.leg.wait_s, j.leg.talk_s) == (None, result, wait_s, None)


def test_a_caller_who_hung_up_before_any_queue_abandoned() -> None:
    j = parse_line(line(queue=""))
    assert (j.outcome, j.transfer_target, j.leg) == ("abandoned", None, None)


def test_fields_a_later_release_adds_are_left_alone() -> None:
    assert parse_line(line(tomorrow="x")).call_id == "1795000000.17"


@pytest.mark.parametrize(("bad", "why"), [
    (line(v=2), "version 1"),
    (line(id=None), "id missing"),
    (line(way="elsewhere"), "unknown way"),
    (line(arrived="yesterday"), "not a time"),
    (line(ended=f"{T0 - 1:.3f}"), "ended before"),
    (line(caller="138 0013'8000"), "alphabet"),
    (line(queue="vip", agent="a", held="4s"), "seconds"),
    (line().rstrip("\n") + "|id=2\n", "repeated"),
    ("garbage\n", "key=value"),
    ("x" * 3000, "too long"),
])
def test_what_is_not_a_journey_line_is_refused_with_its_reason(bad: str, why: str) -> None:
    with pytest.raises(BadJourneyLine, match=why):
        parse_line(bad)


async def test_the_importer_writes_each_call_once_and_skips_bad_lines_without_showing_them(
        dsn: str, pool: asyncpg.Pool, folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    answered = line(id="1795000000.1", language="zh", queue="general-zh", joined=f"{T0 + 8:.3f}", agent="agent-1001",
                    held="12", talked="9")
    gone = line(id="1795000000.2", caller="13900139000")
    secret = "4862159"
    (folder / CURRENT).write_text(answered + f"v=1|id=x|caller={secret} #\n" + gone + "v=1|id=1795000000.3")
    importer = DialplanJourneyImporter(pool, folder, asterisk="sandbox@00:11", every_s=1.0, budget_s=2.0)
    with caplog.at_level(logging.INFO, logger="hotline.journey"):
        assert await importer.import_now() == 2
    assert files(folder) == [], "an imported file is deleted"
    rows = {r["call_id"]: dict(r) for r in await fetch(dsn, "SELECT * FROM calls")}
    assert set(rows) == {"1795000000.1", "1795000000.2"}
    first = rows["1795000000.1"]
    assert (first["caller"], first["dnis"], first["outcome"], first["transfer_target"], first["duration_ms"],
            first["asterisk"], first["language"]) == (
        "13800138000", "95000", "transferred", "fallback:app-down", 40_500, "sandbox@00:11", "zh")
    assert rows["1795000000.2"]["outcome"] == "abandoned"
    leg = dict((await fetch(dsn, "SELECT * FROM queue_legs"))[0])
    assert (leg["call_id"], leg["queue"], leg["agent"], leg["wait_s"], leg["talk_s"], leg["result"]) == (
        "1795000000.1", "general-zh", "agent-1001", 12, 9, "completed")
    assert leg["answered_at"] == datetime.fromtimestamp(T0 + 20, UTC)
    assert "line=2 reason=" in caplog.text and "line=4 reason=\"unfinished line\"" in caplog.text
    assert secret not in caplog.text

    # the same lines again (a file a stopped server left behind, imported by the next): nothing doubles
    (folder / "importing-1.tsv").write_text(answered + gone)
    assert await importer.import_now() == 0
    assert len(await fetch(dsn, "SELECT * FROM calls")) == 2 and len(await fetch(dsn, "SELECT * FROM queue_legs")) == 1


async def test_a_journey_the_app_wrote_is_not_overwritten(dsn: str, pool: asyncpg.Pool, folder: Path) -> None:
    """The queue tracker's leg (AMI, exact times) and a call row already there stay as they are."""
    await pool.execute("INSERT INTO queue_legs (call_id, queue, wait_s, agent, talk_s, result)"
                       " VALUES ('1795000000.1', 'vip', 3, 'agent-1003', 30, 'completed')")
    (folder / CURRENT).write_text(line(id="1795000000.1", line="95002", way="dialplan", queue="vip",
                                       joined=f"{T0 + 8:.3f}", agent="agent-1003", held="4", talked="25"))
    await DialplanJourneyImporter(pool, folder, asterisk=None, every_s=1.0, budget_s=2.0).import_now()
    leg = (await fetch(dsn, "SELECT wait_s, talk_s FROM queue_legs"))[0]
    assert (leg["wait_s"], leg["talk_s"]) == (3, 30)
    assert (await fetch(dsn, "SELECT transfer_target FROM calls"))[0]["transfer_target"] == "queue:vip"


async def test_while_the_database_is_down_the_file_waits_and_is_imported_when_it_answers(
        dsn: str, folder: Path, db_proxy: TcpProxy) -> None:
    (folder / CURRENT).write_text(line())
    pool = await create_pool(db_proxy.through(dsn), budget_s=1.0)
    try:
        importer = DialplanJourneyImporter(pool, folder, asterisk=None, every_s=1.0, budget_s=1.0)
        db_proxy.go_down()
        with pytest.raises(DB_FAILURES):
            await importer.import_now()
        # Asterisk goes on writing: a new current file beside the one claimed
        (folder / CURRENT).write_text(line(id="1795000000.99"))
        assert len(files(folder)) == 2
        db_proxy.refuse = False
        assert await importer.import_now() == 2
        assert files(folder) == []
    finally:
        await pool.close()


async def test_hotline_serve_imports_what_the_dialplan_wrote_while_it_runs(
        fake_ari: FakeAri, dsn: str, tmp_path: Path, folder: Path) -> None:
    settings = settings_for(fake_ari, dsn, tmp_path, dialplan_journeys_dir=str(folder), dialplan_journeys_every_ms=50)
    async with running_hotline(fake_ari, dsn, settings):
        (folder / CURRENT).write_text(line(id="1795000000.5"))
        await fake_ari.wait_for(lambda: not files(folder), 10)
        rows = await fetch(dsn, "SELECT call_id, asterisk FROM calls")
    assert [r["call_id"] for r in rows] == ["1795000000.5"]
    assert rows[0]["asterisk"] and "@" in rows[0]["asterisk"], "recorded as this Asterisk's call"


async def test_a_file_the_database_refuses_for_good_is_kept_aside_and_the_next_goes_on(
        dsn: str, pool: asyncpg.Pool, folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    (folder / "importing-1.tsv").write_text(line(id="poison"))
    (folder / "importing-2.tsv").write_text(line(id="1795000000.6"))
    await pool.execute("""
        CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.call_id = 'poison' THEN RAISE EXCEPTION 'refused' USING ERRCODE = '22023'; END IF;
              RETURN NEW; END $$;
        CREATE TRIGGER refuse_poison BEFORE INSERT ON calls FOR EACH ROW EXECUTE FUNCTION refuse_poison();""")
    importer = DialplanJourneyImporter(pool, folder, asterisk=None, every_s=1.0, budget_s=2.0)
    with caplog.at_level(logging.ERROR, logger="hotline.journey"):
        assert await importer.import_now() == 1
    assert files(folder) == ["refused-importing-1.tsv"]
    assert "event=dialplan_journeys_refused file=importing-1.tsv" in caplog.text and "sqlstate=22023" in caplog.text
    assert [r["call_id"] for r in await fetch(dsn, "SELECT call_id FROM calls")] == ["1795000000.6"]
    assert await importer.import_now() == 0, "a refused file is not taken again"
