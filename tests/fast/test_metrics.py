"""Prometheus metrics of a real `Server` (real PostgreSQL, real ARI client and engine, the fake ARI
server), scraped over HTTP from its own endpoint as Prometheus would."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from agi_app.config import ConfigError, Settings, host_port
from agi_app.engine.journey import JourneyRecord, MemorySink
from agi_app.flows.loader import demo_flow_path, load_document
from agi_app.flows.services import ServiceCall, ServiceOutcome, ServiceRegistry
from agi_app.monitoring.journey import MeteredJourneySink
from agi_app.monitoring.metrics import HotlineMetrics
from agi_app.monitoring.probe import AnswerProbe
from agi_app.serve.app import Server
from tests.fake_ami.pytest_plugin import fake_ami  # noqa: F401 - the fixture
from tests.fake_ami.server import SECRET as AMI_SECRET
from tests.fake_ami.server import USER as AMI_USER
from tests.fake_ami.server import FakeAmi
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, import_demo_customers, settings_for, start_hotline
from tests.fast.flowkit import doc
from tests.support.cli import HOTLINE
from tests.support.demo import MAIN_ZH, UNKNOWN
from tests.support.proxy import TcpProxy

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a labelled series never incremented (absent, as Prometheus shows it)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def scrape(server: Server) -> Samples:
    assert server.monitoring is not None and server.monitoring.endpoint is not None
    async with aiohttp.ClientSession() as http, http.get(server.monitoring.endpoint.url,
                                                         timeout=aiohttp.ClientTimeout(total=5)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")  # the text format
        return parse(await resp.text())


async def until(server: Server, check: Callable[[Samples], bool], timeout: float = 5.0) -> Samples:
    """Scrape until `check` holds (the probe and the query logger report a moment after the fact)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        samples = await scrape(server)
        if check(samples):
            return samples
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not seen within {timeout} s: {sorted(k for k in samples if k[0].startswith('hotline'))}")
        await asyncio.sleep(0.05)


#: Listeners of the server under test on ports the system picks: tests run side by side.
OWN_PORTS = {"metrics_listen": "127.0.0.1:0", "agi_listen": "127.0.0.1:0"}


@pytest_asyncio.fixture
async def metered(fake_ari: FakeAri, dsn: str, tmp_path: Path) -> AsyncIterator[Hotline]:
    """The demo hotline, its metrics on a port the system picks."""
    await import_demo_customers(dsn)
    fake_ari.media_duration = lambda uri: 0.05
    line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, **OWN_PORTS))
    yield line
    await line.stop()


async def test_a_call_is_in_progress_while_it_lasts_then_counted_by_line_and_outcome(metered: Hotline) -> None:
    server = metered.server
    before = await until(server, lambda s: value(s, "hotline_connection_up", peer="database") == 1)
    assert value(before, "hotline_calls_in_progress") == 0
    assert value(before, "hotline_connection_up", peer="ari") == 1
    assert value(before, "hotline_menu_version") == 1, "the demo menus are served as version 1"

    call = await metered.call(UNKNOWN)
    await metered.heard(call, MAIN_ZH)
    during = await scrape(server)
    assert value(during, "hotline_calls_in_progress") == 1
    assert total(during, "hotline_calls_total") == 0, "counted when it ends, with its outcome"

    await metered.ari.press(call, "7")  # no such option
    await metered.heard(call, "sound:hotline/zh/invalid")
    await metered.ari.press(call, "0")  # an agent
    await metered.wait_ended(call)
    after = await until(server, lambda s: value(s, "hotline_calls_in_progress") == 0)
    assert value(after, "hotline_calls_total", line="95000", outcome="transferred") == 1
    assert total(after, "hotline_calls_total") == 1
    assert value(after, "hotline_node_visits_total", node="main") == 1
    assert value(after, "hotline_dtmf_errors_total", kind="invalid") == 1
    assert value(after, "hotline_queue_handoffs_total", queue="general-zh", result="waiting") == 1
    assert value(after, "hotline_lookup_seconds_count", result="unknown") == 1
    assert total(after, "hotline_ari_request_seconds_count", resource="channels", status="2xx") >= 3, \
        "answer, play, continue: every ARI request is timed"
    assert total(after, "hotline_db_query_seconds_count", statement="insert", result="ok") >= 1, \
        "the journey's inserts, timed by asyncpg's query logger"
    labels = {dict(ls).get("line") for (name, ls) in after if name == "hotline_calls_total"}
    assert labels == {"95000"}, "no caller number or call id among the labels"
    assert not any(call in str(ls) or UNKNOWN in str(ls) for (_, ls) in after)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def scrape_url(url: str) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
        assert resp.status == 200
        return parse(await resp.text())


async def test_hotline_serve_answers_scrapes_on_the_address_its_option_gives(fake_ari: FakeAri, dsn: str,
                                                                            tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HOTLINE_DSN": dsn, "HOTLINE_ARI_URL": fake_ari.url, "HOTLINE_ARI_USER": "hotline",
           "HOTLINE_ARI_PASSWORD": "hotline-dev", "HOTLINE_SOUNDS_ROOT": str(tmp_path / "sounds"),
           "HOTLINE_AGI_LISTEN": "127.0.0.1:0",
           "HOTLINE_METRICS_LISTEN": "127.0.0.1:1"}  # the option wins over the environment
    fake_ari.media_duration = lambda uri: 0.05
    server = subprocess.Popen([HOTLINE, "serve", "--flows-file", str(demo_flow_path()),
                               "--metrics-listen", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        await fake_ari.wait_connected(timeout=20)
        call = await fake_ari.place_call(UNKNOWN, "95000")
        await fake_ari.wait_for(lambda: MAIN_ZH in fake_ari.channel(call).played, timeout=10)
        assert value(await scrape_url(url), "hotline_calls_in_progress") == 1
        await fake_ari.press(call, "0")
        deadline = asyncio.get_running_loop().time() + 10
        while value(samples := await scrape_url(url), "hotline_calls_total", line="95000", outcome="transferred") < 1:
            assert asyncio.get_running_loop().time() < deadline, "the call was never counted"
            await asyncio.sleep(0.05)
        assert value(samples, "hotline_calls_in_progress") == 0
    finally:
        server.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.wait, 20) == 0


async def test_a_number_the_menus_do_not_know_is_counted_as_other_with_its_timeouts(metered: Hotline) -> None:
    call = await metered.call(UNKNOWN, dnis="99999")
    await metered.heard(call, "sound:hotline/zh/timeout")
    await metered.ari.hangup(call)
    await metered.wait_ended(call)
    after = await until(metered.server, lambda s: value(s, "hotline_calls_in_progress") == 0)
    assert value(after, "hotline_calls_total", line="other", outcome="abandoned") == 1
    assert value(after, "hotline_dtmf_errors_total", kind="timeout") == 1
    assert total(after, "hotline_calls_total", line="99999") == 0


async def test_the_ari_event_stream_is_reported_down_while_it_is_and_its_failed_handshakes_timed(
        metered: Hotline) -> None:
    server, ari = metered.server, metered.ari
    await until(server, lambda s: value(s, "hotline_connection_up", peer="ari") == 1)
    refused = ari.fault("GET", r"/events", status=500, times=None)
    await ari.drop_websocket()
    down = await until(server, lambda s: value(s, "hotline_connection_up", peer="ari") == 0
                       and value(s, "hotline_ari_request_seconds_count", method="GET", resource="events",
                                 status="5xx") >= 1)
    assert value(down, "hotline_calls_in_progress") == 0
    ari.faults.remove(refused)
    await until(server, lambda s: value(s, "hotline_connection_up", peer="ari") == 1, timeout=15)


async def test_the_ami_connection_is_reported_while_it_is_logged_in(fake_ari: FakeAri, fake_ami: FakeAmi,  # noqa: F811
                                                                      dsn: str, tmp_path: Path) -> None:
    settings = settings_for(fake_ari, dsn, tmp_path, **OWN_PORTS, ami_url=fake_ami.url, ami_user=AMI_USER,
                            ami_password=AMI_SECRET)
    line = await start_hotline(fake_ari, dsn, settings)
    try:
        await until(line.server, lambda s: value(s, "hotline_connection_up", peer="ami") == 1)
        await fake_ami.stop()
        await until(line.server, lambda s: value(s, "hotline_connection_up", peer="ami") == 0)
    finally:
        await line.stop()


BYE = {"type": "hangup", "prompt": "{{ sound('goodbye') }}"}


async def test_services_and_survey_answers_are_counted_by_result_and_score(fake_ari: FakeAri, dsn: str,
                                                                           tmp_path: Path) -> None:
    async def balance(call: ServiceCall) -> ServiceOutcome:
        return ServiceOutcome("ok")

    services = ServiceRegistry()
    services.register("balance", balance)
    nodes = {"p": {"type": "process", "service": "balance", "next": "s"},
             "s": {"type": "survey", "prompt": "{{ sound('survey_intro') }}", "timeout": 2, "next": "bye"},
             "bye": BYE}
    flows = load_document(doc(nodes, start="p"), services=services.names(), version=7)[0]
    fake_ari.media_duration = lambda uri: 0.05
    settings = settings_for(fake_ari, dsn, tmp_path, **OWN_PORTS)
    server = await Server.start(settings, flows=flows, services=services)
    shutdown = asyncio.Event()
    task = asyncio.create_task(server.run(shutdown))
    try:
        await fake_ari.wait_connected()
        call = await fake_ari.place_call(UNKNOWN, "95000")
        await fake_ari.wait_for(lambda: "sound:hotline/en/survey_intro" in fake_ari.channel(call).played)
        await fake_ari.press(call, "4")
        after = await until(server, lambda s: total(s, "hotline_calls_total") == 1)
    finally:
        shutdown.set()
        await asyncio.wait_for(task, 20)
    assert value(after, "hotline_service_results_total", service="balance", result="ok") == 1
    assert value(after, "hotline_survey_answers_total", score="4") == 1
    assert value(after, "hotline_calls_total", line="95000", outcome="self_service") == 1
    assert value(after, "hotline_menu_version") == 7


async def test_the_database_probe_reports_postgresql_gone_and_back(fake_ari: FakeAri, dsn: str, tmp_path: Path,
                                                                   db_proxy: TcpProxy) -> None:
    settings = settings_for(fake_ari, db_proxy.through(dsn), tmp_path, **OWN_PORTS,
                            metrics_probe_ms=50, db_budget_ms=300)
    line = await start_hotline(fake_ari, dsn, settings)
    try:
        await until(line.server, lambda s: value(s, "hotline_connection_up", peer="database") == 1)
        db_proxy.go_down()
        await until(line.server, lambda s: value(s, "hotline_connection_up", peer="database") == 0)
        db_proxy.refuse = False
        await until(line.server, lambda s: value(s, "hotline_connection_up", peer="database") == 1)
    finally:
        await line.stop()


async def test_a_metrics_address_in_use_is_logged_and_calls_are_served_all_the_same(
        fake_ari: FakeAri, dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    fake_ari.media_duration = lambda uri: 0.05
    try:
        with caplog.at_level(logging.ERROR, logger="hotline.metrics"):
            line = await start_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, agi_listen="127.0.0.1:0",
                                                                   metrics_listen=f"127.0.0.1:{port}"))
        try:
            assert line.server.monitoring is not None and line.server.monitoring.endpoint is None
            assert any("event=metrics_unavailable" in r.message and f"listen=127.0.0.1:{port}" in r.message
                       for r in caplog.records)
            call = await line.call(UNKNOWN)
            await line.heard(call, MAIN_ZH)
            await line.ari.press(call, "0")
            assert (await line.wait_ended(call))["outcome"] == "transferred"
        finally:
            await line.stop()
    finally:
        taken.close()


async def test_a_malformed_metrics_address_stops_the_start_before_anything_opens(fake_ari: FakeAri, dsn: str,
                                                                                tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HOTLINE_METRICS_LISTEN='9464'"):
        await Server.start(settings_for(fake_ari, dsn, tmp_path, metrics_listen="9464"))
    assert not fake_ari.requests, "Asterisk was not even asked"


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464)), ("0.0.0.0:0", ("0.0.0.0", 0)),
    ("localhost:80", ("localhost", 80)),
])
def test_listen_addresses_are_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert host_port("metrics_listen", text) == expected


@pytest.mark.parametrize("text", ["9464", ":9464", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", "a b:1"])
def test_other_listen_addresses_are_refused_naming_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="HOTLINE_METRICS_LISTEN"):
        host_port("metrics_listen", text)


def test_the_listen_address_comes_from_the_environment_with_its_default() -> None:
    assert Settings.load({}).metrics_listen == "127.0.0.1:9464"
    assert Settings.load({"HOTLINE_METRICS_LISTEN": "127.0.0.1:9999"}).metrics_listen == "127.0.0.1:9999"


def test_the_metered_sink_hands_every_record_to_the_writer_first() -> None:
    metrics, writer = HotlineMetrics(), MemorySink()
    sink = MeteredJourneySink(writer, metrics, lambda: {"95000"})
    record = JourneyRecord("c1", "13800138000", "95000", started_at=datetime.now(UTC))
    sink.call_started(record)
    sink.node_input("c1", 1, 1, "", "timeout")
    sink.survey_answer("c1", "s", 5)
    record.outcome = "hangup"
    sink.call_ended(record, record.started_at)
    assert writer.calls == {"c1": record} and writer.inputs == [("c1", 1, "", "timeout")]
    assert writer.surveys == [("c1", "s", 5)]
    samples = parse(metrics.exposition().decode())
    assert value(samples, "hotline_calls_total", line="95000", outcome="hangup") == 1


async def test_a_probe_that_does_not_answer_in_time_is_down() -> None:
    never = asyncio.Event()
    probe = AnswerProbe("database", never.wait, every_s=1, budget_s=0.05)
    assert not probe.up
    assert await probe.check_once() is False

    async def answers() -> int:
        return 1

    probe = AnswerProbe("database", answers, every_s=1, budget_s=0.05)
    assert await probe.check_once() is True and probe.up
