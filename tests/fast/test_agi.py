"""The FastAGI hooks (identify, status, route) on the real server — panoramisk's application with
our connection handler, the real caller lookup, calendar, emergency and routing over PostgreSQL —
spoken to by a peer that plays Asterisk as recorded (tests/support/agi_peer.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import pytest_asyncio

from agi_app.agi.hooks import AgiHooks
from agi_app.agi.request import parse_request
from agi_app.agi.server import RETRY_S, AgiServer
from agi_app.calendar.model import DEFAULT_TIMEZONE, DayRule
from agi_app.config import Settings
from agi_app.db.pool import connection, create_pool
from agi_app.db.repositories import calendar, operations
from agi_app.db.repositories import customers as customer_repo
from agi_app.directory.models import Customer
from agi_app.flows.loader import load_document
from agi_app.serve.app import start_facts
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import import_demo_customers, settings_for, start_hotline
from tests.support.agi_peer import (
    Channel,
    _get_reply,
    recorded_requests,
    request_block,
    run_agi,
)
from tests.support.demo import ELDERLY, KNOWN_ZH, UNKNOWN, VIP_EN, demo_document, demo_flows
from tests.support.proxy import TcpProxy

SETTINGS = Settings(agi_listen="127.0.0.1:0", agi_request_ms=300, agi_command_ms=300)


@dataclass
class Agi:
    server: AgiServer
    dsn: str

    async def ask(self, script: str, caller: str = KNOWN_ZH, **kw: object) -> Channel:
        block = request_block(script, caller=caller, **kw)  # type: ignore[arg-type]
        return await run_agi(self.server.port, block)


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    await import_demo_customers(dsn)
    pool = await create_pool(dsn, budget_s=2.0)
    yield pool
    await pool.close()


async def serving(pool: asyncpg.Pool, settings: Settings = SETTINGS) -> AgiServer:
    """The hooks wired as `hotline serve` wires them (serve.app.start_facts), on a free port."""
    flows = demo_flows()  # parsed once: re-parsing per request would stall the loop the budgets are timed on
    server = AgiServer.from_settings(AgiHooks(start_facts(settings, pool), lambda: flows), settings)
    await server.start()
    return server


@pytest_asyncio.fixture
async def agi(pool: asyncpg.Pool, dsn: str) -> AsyncIterator[Agi]:
    server = await serving(pool)
    yield Agi(server, dsn)
    await server.close()


# ------------------------------------------------------------------------------ the peer is Asterisk


def test_the_peer_sends_and_answers_what_asterisk_sent_and_answered() -> None:
    recorded = recorded_requests()
    for request in recorded:
        env = dict(line.split(": ", 1) for line in request["request"].rstrip("\n").split("\n"))
        block = request_block(request["script"], caller=env["agi_callerid"], extension=env["agi_extension"],
                              uniqueid=env["agi_uniqueid"],
                              overrides={"agi_language": env["agi_language"], "agi_priority": env["agi_priority"]})
        assert block.decode() == request["request"]
        channel = Channel()
        for exchange in request["exchanges"]:
            assert channel.reply(exchange["command"]) == exchange["reply"]
    assert _get_reply("x1") == "200 result=1 (x1)\n"


def test_an_empty_value_may_come_without_its_space() -> None:
    """Asterisk sends `agi_accountcode: ` (recorded); a proxy trimming the line's end must not break it."""
    block = request_block("identify").replace(b"agi_accountcode: \n", b"agi_accountcode:\n")
    assert parse_request(block).env["agi_accountcode"] == ""


# ------------------------------------------------------------------------------ identify


async def test_identify_a_known_caller_sets_id_segment_and_language_only(agi: Agi) -> None:
    channel = await agi.ask("identify", VIP_EN)
    assert channel.variables == {"HOTLINE_IDENTIFY": "ok", "HOTLINE_CUSTOMER_ID": "C003",
                                 "HOTLINE_SEGMENT": "vip", "HOTLINE_LANGUAGE": "en"}
    assert channel.closed_by_server
    assert not any("Smith" in command or "John" in command for command in channel.commands)


async def test_identify_sets_nothing_it_cannot_carry_as_a_plain_token(agi: Agi) -> None:
    async with connection(agi.dsn) as conn:
        await customer_repo.import_customers(conn, [Customer('C"9 x', "Odd", "Mr", "standard", "zh", ("13988887777",))])
    channel = await agi.ask("identify", "13988887777")
    assert channel.variables == {"HOTLINE_AGI_ERROR": "unsafe_value"}


async def test_identify_an_unknown_caller_gets_the_line_defaults(agi: Agi) -> None:
    channel = await agi.ask("identify", UNKNOWN)
    assert channel.variables == {"HOTLINE_IDENTIFY": "unknown", "HOTLINE_CUSTOMER_ID": "",
                                 "HOTLINE_SEGMENT": "standard", "HOTLINE_LANGUAGE": "zh"}


async def test_identify_normalises_the_number_as_the_ivr_does(agi: Agi) -> None:
    channel = await agi.ask("identify", "+8613700137000")
    assert channel.variables["HOTLINE_CUSTOMER_ID"] == "C003"


async def test_identify_with_a_slow_database_is_degraded_within_the_lookup_budget(
        dsn: str, db_proxy: TcpProxy) -> None:
    await import_demo_customers(dsn)
    pool = await create_pool(db_proxy.through(dsn), budget_s=2.0)
    server = await serving(pool)
    try:
        db_proxy.delay = 1.0
        started = time.monotonic()
        channel = await run_agi(server.port, request_block("identify", caller=VIP_EN))
        elapsed = time.monotonic() - started
    finally:
        db_proxy.delay = 0
        await server.close()
        await pool.close()
    assert channel.variables == {"HOTLINE_IDENTIFY": "degraded", "HOTLINE_CUSTOMER_ID": "",
                                 "HOTLINE_SEGMENT": "standard", "HOTLINE_LANGUAGE": "zh"}
    assert elapsed < SETTINGS.lookup_budget_s + 0.6  # uncut: seconds (a query through the proxy is >= 2 s)


# ------------------------------------------------------------------------------ status


async def test_status_open_by_default(agi: Agi) -> None:
    assert (await agi.ask("status")).variables == {"HOTLINE_STATUS": "open"}


async def test_status_emergency_comes_first_and_carries_no_text(agi: Agi) -> None:
    async with connection(agi.dsn) as conn:
        await operations.switch_on_emergency(conn, line=None, text_zh="系统维护", text_en="Maintenance", sound=None,
                                             until=None, actor="test")
        await calendar.set_weekly_hours(conn, "*", range(7), [])
    channel = await agi.ask("status")
    assert channel.variables == {"HOTLINE_STATUS": "emergency"}
    assert not any("Maintenance" in command or "维护" in command for command in channel.commands)


async def test_status_holiday(agi: Agi) -> None:
    today = datetime.now(ZoneInfo(DEFAULT_TIMEZONE)).date()
    async with connection(agi.dsn) as conn:
        await calendar.put_day(conn, DayRule(today, "holiday", "National Day"))
    assert (await agi.ask("status")).variables == {"HOTLINE_STATUS": "holiday"}


async def test_status_closed_on_the_lines_own_calendar(agi: Agi) -> None:
    async with connection(agi.dsn) as conn:
        await calendar.set_weekly_hours(conn, "95002", range(7), [])
    assert (await agi.ask("status", extension="95002")).variables == {"HOTLINE_STATUS": "closed"}
    assert (await agi.ask("status", extension="95000")).variables == {"HOTLINE_STATUS": "open"}


async def test_status_with_a_slow_database_is_open_within_the_call_start_budget(
        dsn: str, db_proxy: TcpProxy) -> None:
    pool = await create_pool(db_proxy.through(dsn), budget_s=2.0)
    server = await serving(pool)
    try:
        db_proxy.delay = 1.0
        started = time.monotonic()
        channel = await run_agi(server.port, request_block("status"))
        elapsed = time.monotonic() - started
    finally:
        db_proxy.delay = 0
        await server.close()
        await pool.close()
    assert channel.variables == {"HOTLINE_STATUS": "open"}
    assert elapsed < SETTINGS.call_start_budget_s + 0.6  # uncut: >= 2 s


# ------------------------------------------------------------------------------ route


@pytest.mark.parametrize(("caller", "queue", "segment", "language"), [
    (KNOWN_ZH, "general-zh", "standard", "zh"),
    (VIP_EN, "vip", "vip", "en"),
    (ELDERLY, "elderly", "elderly", "zh"),
    (UNKNOWN, "general-zh", "standard", "zh"),
])
async def test_route_picks_the_lines_queue_for_the_caller(agi: Agi, caller: str, queue: str, segment: str,
                                                          language: str) -> None:
    channel = await agi.ask("route", caller)
    assert channel.variables == {"HOTLINE_ROUTE": queue, "HOTLINE_SEGMENT": segment, "HOTLINE_LANGUAGE": language}


async def test_route_takes_the_line_from_the_first_argument(agi: Agi) -> None:
    """A dialplan running in extension `s` names its line; 95001's agent destination is the VIP desk."""
    channel = await agi.ask("route", KNOWN_ZH, extension="s", args=["95001"])
    assert channel.variables["HOTLINE_ROUTE"] == "vip"


async def test_route_never_sends_the_dialplan_out_of_the_agent_queues(pool: asyncpg.Pool) -> None:
    """A line whose agent destination is a fixed dialplan place has no queue to give: refused."""
    document = demo_document()
    document["destinations"]["operator"] = {"context": "from-operator", "extension": "100"}
    document["lines"]["95002"] = {**document["lines"]["95000"], "agent": "operator"}
    flows = load_document(document, version=1)[0]
    server = AgiServer.from_settings(AgiHooks(start_facts(SETTINGS, pool), lambda: flows), SETTINGS)
    await server.start()
    try:
        channel = await run_agi(server.port, request_block("route", caller=VIP_EN))
    finally:
        await server.close()
    assert channel.variables == {"HOTLINE_AGI_ERROR": "no_route"}


# ------------------------------------------------------------------------------ refused requests


@pytest.mark.parametrize(("block", "reason"), [
    (request_block("transfer_money"), "unknown_script"),
    (request_block("identify", overrides={"agi_uniqueid": None}), "missing_variables"),
    (request_block("identify", overrides={"agi_callerid": "1" * 300}), "value_too_long"),
    (request_block("identify", extension="s"), "no_line"),
    (b"GET / HTTP/1.1\nHost: x\n\n", "malformed_request"),
    (b"agi_network_script: identify\n\xff\xfe\n\n", "malformed_request"),
    (request_block("identify").replace(b"agi_channel", b"agi_channel: x\nagi_channel"), "malformed_request"),
])
async def test_a_malformed_request_gets_a_clear_error_and_nothing_else(
        agi: Agi, block: bytes, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.agi")
    channel = await run_agi(agi.server.port, block)
    assert channel.variables == {"HOTLINE_AGI_ERROR": reason}
    assert channel.closed_by_server
    assert any("event=agi_refused" in r.getMessage() and f"reason={reason}" in r.getMessage()
               for r in caplog.records)
    assert (await agi.ask("identify", VIP_EN)).variables["HOTLINE_IDENTIFY"] == "ok"  # still serving


async def test_a_request_too_large_is_refused_unread(agi: Agi) -> None:
    huge = request_block("identify", args=["1" * 200] * 60)
    channel = await run_agi(agi.server.port, huge)
    assert channel.variables == {"HOTLINE_AGI_ERROR": "request_too_large"}


async def test_a_stalled_request_fails_within_its_budget(agi: Agi) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", agi.server.port)
    started = time.monotonic()
    writer.write(request_block("identify")[:100])  # never the blank line
    await writer.drain()
    told = await asyncio.wait_for(reader.read(), 5)
    assert time.monotonic() - started < SETTINGS.agi_request_s + 0.5
    assert told == b'SET VARIABLE HOTLINE_AGI_ERROR "request_timeout"\n'
    writer.close()
    for _ in range(100):  # the server reads on to our close (no reset), then lets go
        if not agi.server.active:
            break
        await asyncio.sleep(0.01)
    assert agi.server.active == 0


async def test_a_peer_that_closes_mid_request_costs_nothing(agi: Agi) -> None:
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", agi.server.port)
        writer.write(b"agi_network: yes\n")
        writer.close()
    await asyncio.sleep(0.1)
    assert agi.server.active == 0
    assert (await agi.ask("status")).variables == {"HOTLINE_STATUS": "open"}


async def test_a_caller_hanging_up_ends_the_request(agi: Agi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hotline.agi")
    channel = await run_agi(agi.server.port, request_block("identify", caller=VIP_EN), hangup=True)
    assert len(channel.commands) <= 1  # the first SET read HANGUP as its reply: nothing more is sent
    assert any("event=agi_aborted" in r.getMessage() and "reason=caller_hung_up" in r.getMessage()
               for r in caplog.records)


async def test_an_asterisk_slow_to_answer_a_command_is_left_within_the_command_budget(agi: Agi) -> None:
    started = time.monotonic()
    channel = await run_agi(agi.server.port, request_block("status"), reply_delay=1.0)
    assert channel.closed_by_server
    assert time.monotonic() - started < SETTINGS.agi_command_s + 1.0 + 0.5


async def test_requests_beyond_the_limit_are_refused_at_once(pool: asyncpg.Pool) -> None:
    server = await serving(pool, SETTINGS.with_overrides(agi_max_requests=1, agi_request_ms=2000))
    try:
        _, stalled = await asyncio.open_connection("127.0.0.1", server.port)
        stalled.write(b"agi_network: yes\n")
        await stalled.drain()
        await asyncio.sleep(0.05)
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request_block("status"))
        told = await asyncio.wait_for(reader.read(), 5)
        assert told == b'SET VARIABLE HOTLINE_AGI_ERROR "busy"\n'
        assert time.monotonic() - started < 0.5
        writer.close()
        stalled.close()
    finally:
        await server.close()


async def test_close_ends_requests_in_progress(pool: asyncpg.Pool) -> None:
    server = await serving(pool, SETTINGS.with_overrides(agi_request_ms=10_000))
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    assert server.active == 1
    await asyncio.wait_for(server.close(), 2)
    assert server.active == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)
    writer.close()


# ------------------------------------------------------------------------------ hotline serve


async def test_hotline_serve_answers_the_hooks_for_its_lifetime(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    await import_demo_customers(dsn)
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, agi_listen="127.0.0.1:0"))
    assert line.server.agi is not None
    await asyncio.wait_for(line.server.agi.listening.wait(), 2)
    port = line.server.agi.port
    channel = await run_agi(port, request_block("route", caller=VIP_EN))
    assert channel.variables["HOTLINE_ROUTE"] == "vip"
    assert line.server.monitoring is not None
    timed = [sample.value for family in line.server.monitoring.metrics.lookup_seconds.collect()
             for sample in family.samples if sample.name.endswith("_count") and sample.labels["result"] == "found"]
    assert timed == [1.0], "the hook's lookup is timed like a call's"
    await line.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_hotline_serve_takes_its_address_once_a_draining_server_lets_it_go(
        fake_ari: FakeAri, dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A restart: the old server still holds the address while its calls drain. The new one serves
    calls at once, says the hooks are unavailable, and listens as soon as the address is free."""
    caplog.set_level(logging.INFO, logger="hotline.agi")
    taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = taken.sockets[0].getsockname()[1]
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, agi_listen=f"127.0.0.1:{port}"))
    try:
        assert line.server.agi is not None
        assert not line.server.agi.listening.is_set()
        assert f"event=agi_unavailable host=127.0.0.1 port={port}" in caplog.text
        call = await line.call(KNOWN_ZH)
        await line.heard(call, "sound:hotline/zh/welcome")  # IVR calls do not wait for the hooks
        taken.close()
        await taken.wait_closed()
        await asyncio.wait_for(line.server.agi.listening.wait(), RETRY_S + 1)
        assert (await run_agi(port, request_block("status"))).variables == {"HOTLINE_STATUS": "open"}
    finally:
        taken.close()
        await line.stop()
