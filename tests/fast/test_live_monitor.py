"""The live view: a real `Server` (real PostgreSQL, ARI client and engine, the fake ARI server)
publishes its calls in progress into `live_servers`; `hotline monitor --json` and the wallboard's
server-sent events show them, caller masked, with node, time in node and last activity."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web

from agi_app.config import Settings
from agi_app.monitoring import live_store
from agi_app.monitoring.live import LiveView, merge
from agi_app.monitoring.publisher import LivePublisher
from agi_app.monitoring.service import Monitoring
from agi_app.monitoring.wallboard import MAX_VIEWERS, Wallboard
from agi_app.secure import masked_phone
from agi_app.serve.live import FlowDrawing
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, demo_flows, import_demo_customers, settings_for, start_hotline
from tests.support.cli import HOTLINE, hotline_cli
from tests.support.demo import MAIN_ZH, UNKNOWN

Rows = list[dict[str, Any]]


@pytest_asyncio.fixture
async def live(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> AsyncIterator[Hotline]:
    await import_demo_customers(dsn)
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, live_publish_ms=100))
    yield line
    await line.stop()


async def rows(dsn: str) -> Rows:
    conn = await asyncpg.connect(dsn)
    try:
        return [{"server_id": r["server_id"], "snapshot": json.loads(r["snapshot"])}
                for r in await conn.fetch("SELECT server_id, snapshot::text AS snapshot FROM live_servers")]
    finally:
        await conn.close()


async def until_rows(dsn: str, check: Callable[[Rows], bool], timeout: float = 5.0) -> Rows:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check(found := await rows(dsn)):
        assert asyncio.get_running_loop().time() < deadline, f"not seen within {timeout} s: {found}"
        await asyncio.sleep(0.05)
    return found


def calls_of(found: Rows) -> list[dict[str, Any]]:
    return [c for r in found for c in r["snapshot"]["calls"]]


def test_a_calling_number_shows_at_most_its_last_four_digits_and_never_half_of_it() -> None:
    assert masked_phone("13800138000") == "*******8000"
    assert masked_phone("1001") == "**01"
    assert masked_phone("+4420") == "***20"
    assert masked_phone(None) == masked_phone("") == ""


async def test_a_call_in_progress_is_published_masked_with_its_node_then_counted_and_gone(
        live: Hotline, dsn: str) -> None:
    call = await live.call(UNKNOWN)
    await live.heard(call, MAIN_ZH)
    found = await until_rows(dsn, lambda f: any(c["node"] == "main" for c in calls_of(f)))
    assert len(found) == 1, "one row per server"
    snapshot = found[0]["snapshot"]
    (shown,) = snapshot["calls"]
    assert shown["call_id"] == call
    assert shown["caller"] == "*******1111" and shown["line"] == "95000"
    assert shown["last_activity"] == "entered main"
    assert UNKNOWN not in json.dumps(found), "never the full number"
    assert snapshot["lines"] == {"95000": 1}
    assert snapshot["menu_version"] == 1
    assert snapshot["connections"] == {"ari": True, "database": True}
    first_in_node = shown["in_node_s"]
    later = await until_rows(dsn, lambda f: any(c["in_node_s"] >= first_in_node + 0.3 for c in calls_of(f)))
    assert calls_of(later)[0]["node"] == "main", "time in node grows while the caller stays"

    await live.ari.press(call, "7")  # no such option
    await until_rows(dsn, lambda f: [c["last_activity"] for c in calls_of(f)] == ["key: invalid"])
    await live.ari.press(call, "0")  # an agent
    await live.wait_ended(call)
    after = await until_rows(dsn, lambda f: not calls_of(f))
    assert after[0]["snapshot"]["lines"] == {}
    assert "totals" not in after[0]["snapshot"], "today's totals are counted from the journeys, not published"
    publisher = live.server.monitoring.live if live.server.monitoring else None
    assert publisher is not None
    await until(lambda: publisher.merged is not None and publisher.merged["totals"].get("calls") == 1)
    assert publisher.merged is not None
    totals = publisher.merged["totals"]
    assert (totals["calls"], totals["to_agents"], totals["errors"]) == (1, 1, 0)
    assert totals["outcomes"] == {"transferred": 1}
    assert (totals["known"], totals["stale"], totals["timezone"]) == (True, False, "Asia/Shanghai")
    assert totals["day"] == datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat(), "the bank's day"


async def test_monitor_json_and_the_wallboard_stream_show_the_call_while_it_is_in_progress(
        live: Hotline, dsn: str) -> None:
    call = await live.call(UNKNOWN)
    await live.heard(call, MAIN_ZH)
    await until_rows(dsn, lambda f: any(c["node"] == "main" for c in calls_of(f)))

    done = await asyncio.to_thread(hotline_cli, dsn, "monitor", "--json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert [(c["caller"], c["line"], c["node"]) for c in view["calls"]] == [("*******1111", "95000", "main")]
    assert view["calls"][0]["server"] == view["servers"][0]["server"]
    assert UNKNOWN not in done.stdout

    frame = await asyncio.to_thread(hotline_cli, dsn, "monitor", "--once")
    assert frame.returncode == 0, frame.stderr
    assert "│ *******1111 │ 95000 │ main │" in frame.stdout, frame.stdout
    assert UNKNOWN not in frame.stdout

    endpoint = live.server.monitoring.endpoint if live.server.monitoring else None
    assert endpoint is not None
    base = endpoint.url.removesuffix("/metrics")
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(f"{base}/wallboard") as page:
            assert page.status == 200 and page.content_type == "text/html"
            assert 'new EventSource("/wallboard/events")' in await page.text()
        async with http.get(f"{base}/wallboard/flow.svg") as drawing:  # Graphviz's drawing of the menus in use
            assert drawing.status == 200 and drawing.content_type == "image/svg+xml"
            svg = await drawing.text()
            assert "<svg" in svg and "menu version 1" in svg and ">main" in svg
        async with http.get(f"{base}/wallboard/events") as events:
            assert events.headers["Content-Type"] == "text/event-stream"
            streamed = await first_event(events)
    assert [c["call_id"] for c in streamed["calls"]] == [call]
    assert streamed["calls"][0]["caller"] == "*******1111"


async def first_event(response: aiohttp.ClientResponse) -> dict[str, Any]:
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            event: dict[str, Any] = json.loads(line.removeprefix("data: "))
            return event
    raise AssertionError("the stream ended without an event")


async def test_a_server_that_stops_deletes_its_row(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, live_publish_ms=100))
    try:
        await until_rows(dsn, lambda f: len(f) == 1)
    finally:
        await line.stop()
    assert await rows(dsn) == []


async def test_a_row_older_than_the_stale_age_is_left_out(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await live_store.publish(conn, "fresh:1", {"server": "fresh:1", "calls": []})
        await live_store.publish(conn, "dead:2", {"server": "dead:2", "calls": []})
        await conn.execute("UPDATE live_servers SET updated_at = now() - interval '10 seconds'"
                           " WHERE server_id = 'dead:2'")
        assert [s["server"] for s in await live_store.fresh(conn, 5.0)] == ["fresh:1"]
        assert len(await live_store.fresh(conn, 60.0)) == 2
    finally:
        await conn.close()


def test_merge_puts_every_servers_calls_together_sums_lines_and_shows_the_totals_read() -> None:
    a, b = LiveView(), LiveView()
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    a.started("c1", "13800138000", "95000", t0)
    b.started("c2", "13911112222", "95000", t0.replace(minute=1))
    b.started("c3", "13911113333", "95588", t0.replace(minute=2))
    b.ended("c3")
    a.queued("c1", "general-zh", "waiting")
    one = {"server": "a", "at": "1", **a.snapshot({"c1"}, now=t0), "queues": None}
    two = {"server": "b", "at": "2", **b.snapshot({"c2"}, now=t0), "queues": [{"group": "general"}], "agents": []}
    totals = {"known": True, "stale": False, "calls": 7}
    view = merge([two, one], totals)
    assert [(c["call_id"], c["server"], c["caller"]) for c in view["calls"]] == [
        ("c1", "a", "*******8000"), ("c2", "b", "*******2222")]
    assert view["calls"][0]["last_activity"] == "queue general-zh: waiting"
    assert view["lines"] == {"95000": 2}
    assert view["totals"] == totals
    assert view["queues"] == [{"group": "general"}]
    nobody = merge([], totals)
    assert (nobody["calls"], nobody["servers"], nobody["lines"]) == ([], [], {})


def test_a_call_the_registry_no_longer_holds_leaves_the_view() -> None:
    view = LiveView()
    view.started("c1", "13800138000", "95000", datetime.now(UTC))
    assert [c["call_id"] for c in view.snapshot({"c1"})["calls"]] == ["c1"]
    assert view.snapshot(set())["calls"] == []
    assert view.snapshot({"c1"})["calls"] == [], "forgotten, not hidden"


async def test_the_menus_are_drawn_once_per_version_and_not_at_all_without_graphviz(
        monkeypatch: pytest.MonkeyPatch) -> None:
    flows = demo_flows()
    drawing = FlowDrawing(lambda: flows, budget_s=20)
    with monkeypatch.context() as without_graphviz:
        without_graphviz.setenv("PATH", "/nonexistent")
        assert await drawing() is None, "no `dot`: no drawing, and the wallboard hides the area"
    svg = await drawing()
    assert svg is not None and "menu version 1" in svg
    with monkeypatch.context() as without_graphviz:
        without_graphviz.setenv("PATH", "/nonexistent")
        assert await drawing() == svg, "version 1 is not drawn again"


class Terminal:
    """`hotline ARGS` on a pseudo-terminal, as an operator runs it: what it drew so far."""

    def __init__(self, dsn: str, *args: str) -> None:
        self._master, slave = os.openpty()
        env = {**os.environ, "HOTLINE_DSN": dsn, "TERM": "xterm", "COLUMNS": "160", "LINES": "50"}
        self.process = subprocess.Popen([HOTLINE, *args], env=env, stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        self.output = ""

    def _read(self, timeout: float) -> None:
        if select.select([self._master], [], [], timeout)[0]:
            with contextlib.suppress(OSError):  # the process has gone: nothing more to read
                self.output += os.read(self._master, 65536).decode(errors="replace")

    async def until(self, check: Callable[[str], bool], timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check(self.output):
            assert asyncio.get_running_loop().time() < deadline, f"not drawn within {timeout} s:\n{self.output[-3000:]}"
            await asyncio.to_thread(self._read, 0.2)

    async def close(self) -> int:
        self.process.send_signal(signal.SIGINT)  # Ctrl-C
        code = await asyncio.to_thread(self.process.wait, 10)
        os.close(self._master)
        return code


async def test_monitor_redraws_every_second_on_a_terminal_until_ctrl_c(live: Hotline, dsn: str) -> None:
    terminal = Terminal(dsn, "monitor")
    try:
        await terminal.until(lambda out: "in progress 0" in out)
        call = await live.call(UNKNOWN)
        await terminal.until(lambda out: "*******1111" in out and "in progress 1" in out)
        await live.ari.hangup(call)
        await live.wait_ended(call)
        drawn = len(terminal.output)
        await terminal.until(lambda out: "in progress 0" in out[drawn:] and "calls today 1" in out[drawn:])
        assert UNKNOWN not in terminal.output
    finally:
        assert await terminal.close() == 0, terminal.output[-2000:]


async def test_a_publisher_that_died_is_said_when_monitoring_closes(dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> dict[str, Any]:
        raise RuntimeError("a bug in the snapshot")

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        monitoring = Monitoring(Settings(metrics_listen="127.0.0.1:0"))
        publisher = LivePublisher(pool, broken, server_id="test:1", every_s=0.05, budget_s=1, stale_s=5)
        await monitoring.start(database=lambda: pool.fetchval("SELECT 1"), live=publisher)
        await asyncio.sleep(0.2)
        with caplog.at_level(logging.ERROR, logger="hotline.metrics"):
            await monitoring.close()
    finally:
        await pool.close()
    assert "event=task_failed task=live-publisher error=RuntimeError" in caplog.text


@contextlib.asynccontextmanager
async def wallboard_at(board: Wallboard) -> AsyncIterator[str]:
    """`board` served alone on a free loopback port; its base URL."""
    app = web.Application()
    board.add_routes(app)
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_the_wallboard_streams_to_a_bounded_number_of_viewers_and_drops_one_that_stops_reading() -> None:
    big = {"calls": [], "padding": "x" * 500_000}  # a few fill a socket's buffers
    board = Wallboard(lambda: big, every_s=0.05, write_budget_s=0.5)
    async with wallboard_at(board) as base, aiohttp.ClientSession() as http:
        port = int(base.rsplit(":", 1)[1])
        stalled = []
        for _ in range(MAX_VIEWERS):  # viewers that never read what they asked for
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /wallboard/events HTTP/1.1\r\nHost: wallboard\r\n\r\n")
            stalled.append(writer)
        await until(lambda: board.viewers == MAX_VIEWERS)
        async with http.get(f"{base}/wallboard/events") as refused:
            assert refused.status == 503, "all the viewers' places are taken"
        await until(lambda: board.viewers == 0)  # their updates were not taken within the budget
        async with http.get(f"{base}/wallboard/events") as served:
            assert served.status == 200
            assert (await served.content.readuntil(b"\n")).startswith(b"event: live")
        for writer in stalled:
            writer.close()


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.05)
