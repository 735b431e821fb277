"""`make bench`'s own logic: reading SIPp's statistics, /proc CPU times and the app's histograms,
judging product calls by their journeys (real PostgreSQL), the capacity found from the steps and
the goals table. The load itself needs the real Asterisk: `make bench`."""

from __future__ import annotations

import logging
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import yaml
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from agi_app.logs import log_event
from bench import prom
from bench.cpu import cpu_ms, parse_cpu_ticks
from bench.journeys import (
    DEFAULT_MENU,
    MENU_OF_SEGMENT,
    Journey,
    bench_customers,
    check_journeys,
    customers_csv,
    degraded_calls,
    install_write_clock,
    step_journeys,
    write_lag,
)
from bench.results import NATIVE, PRODUCT, Latency, Step, goals, goals_markdown, highest_clean_rate
from bench.run import FLOWS, MISSED_WHY, prompt_nodes, write_results
from bench.sipp_load import callers_file, parse_stats
from tests.support.asterisk_config import rendered

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "bench"


# --- SIPp ------------------------------------------------------------------------------------
def test_sipp_statistics_are_read_from_the_last_row_of_its_file() -> None:
    counts = parse_stats((FIXTURES / "sipp_stats_one_failed.csv").read_text())
    assert (counts.placed, counts.succeeded, counts.failed) == (1, 0, 1)


def test_a_statistics_file_without_data_or_columns_is_refused() -> None:
    header = (FIXTURES / "sipp_stats_one_failed.csv").read_text().splitlines()[0]
    with pytest.raises(ValueError, match="no data row"):
        parse_stats(header + "\n")
    with pytest.raises(ValueError, match="FailedCall"):
        parse_stats("OutgoingCall(C);SuccessfulCall(C)\n3;3\n")


def test_the_callers_file_gives_sipp_one_number_per_call_in_turn(tmp_path: Path) -> None:
    path = callers_file(tmp_path / "callers.csv", ["13790000000", "13790000001"])
    assert path.read_text() == "SEQUENTIAL\n13790000000;\n13790000001;\n"


# --- CPU -------------------------------------------------------------------------------------
def test_cpu_ticks_are_counted_after_the_command_name_whatever_it_contains() -> None:
    fields = " ".join(["S"] + ["0"] * 10 + ["150", "25"] + ["0"] * 30)
    assert parse_cpu_ticks(f"4242 (we ird) (name) {fields}") == 175


def test_cpu_time_of_a_process_grows_as_it_works() -> None:
    before = cpu_ms(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert cpu_ms(os.getpid()) - before >= 150


# --- the app's histograms ----------------------------------------------------------------------
def exposition(histogram: Histogram, registry: CollectorRegistry, values: list[float]) -> prom.Samples:
    for value in values:
        histogram.labels(since="dtmf").observe(value)
    return prom.parse_samples(generate_latest(registry).decode())


def test_quantiles_come_from_the_buckets_observed_during_the_step_only() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("waits_seconds", "test", ["since"], buckets=(0.01, 0.02, 0.05, 1.0), registry=registry)
    before = exposition(histogram, registry, [0.9] * 50)  # an earlier step: slow
    after = exposition(histogram, registry, [0.015] * 98 + [0.04] * 2)
    q = prom.quantiles(before, after, "waits_seconds", {"since": "dtmf"})
    assert q.count == 100
    assert q.p50_ms is not None and 10 < q.p50_ms <= 20
    assert q.p99_ms is not None and 20 < q.p99_ms <= 50
    assert prom.quantiles(before, after, "waits_seconds", {"since": "stasis_start"}).count == 0
    assert prom.delta(before, after, "waits_seconds_count") == 100


def test_a_quantile_beyond_the_last_bound_is_that_bound_and_none_without_observations() -> None:
    assert prom.quantile([(0.01, 0.0), (0.1, 1.0), (float("inf"), 10.0)], 0.99) == 0.1
    assert prom.quantile([(0.01, 0.0), (float("inf"), 0.0)], 0.5) is None
    assert prom.quantile([], 0.5) is None


# --- journeys ----------------------------------------------------------------------------------
CUSTOMERS = {c.phone: c for c in bench_customers(3)}  # standard, vip, elderly
STANDARD, VIP, ELDERLY = (c for c in CUSTOMERS.values())
NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


def journey(call_id: str, customer_phone: str, *, customer_id: str | None = "same", menu: str | None = None,
            outcome: str | None = "hangup") -> Journey:
    customer = CUSTOMERS[customer_phone]
    return Journey(call_id, customer_phone, customer.customer_id if customer_id == "same" else customer_id, 1,
                   outcome, NOW, ("entry", menu or customer.menu, "goodbye"))


def test_each_segment_has_its_own_menu_in_the_bench_flows() -> None:
    document = yaml.safe_load(FLOWS.read_text())
    nodes = document["flows"]["bench"]["nodes"]
    assert {*MENU_OF_SEGMENT.values(), DEFAULT_MENU} <= set(nodes)
    assert (STANDARD.menu, VIP.menu, ELDERLY.menu) == ("menu_standard", "menu_vip", "menu_elderly")
    assert sorted(prompt_nodes()) == ["goodbye", "menu_elderly", "menu_standard", "menu_vip"]


def test_calls_that_got_their_menu_and_ended_are_not_failed() -> None:
    journeys = [journey("a", STANDARD.phone), journey("b", VIP.phone), journey("c", ELDERLY.phone)]
    check = check_journeys(3, journeys, CUSTOMERS)
    assert (check.failed, check.journeys) == (0, 3)


def test_a_missing_journey_a_lost_lookup_a_general_menu_and_an_error_each_fail_one_call() -> None:
    journeys = [journey("a", VIP.phone, customer_id=None, menu=DEFAULT_MENU),  # the lookup ran out of budget
                journey("b", ELDERLY.phone, menu=DEFAULT_MENU),  # the general menu instead of theirs
                journey("c", STANDARD.phone, outcome="error"),
                journey("d", STANDARD.phone)]
    check = check_journeys(5, journeys, CUSTOMERS)
    assert (check.missing, check.lost_personalisation, check.unfinished, check.failed) == (1, 2, 1, 4)
    assert check.reasons == {"no_journey": 1, "no_customer": 1, "wrong_menu": 1, "outcome_error": 1}


def test_calls_the_server_logged_a_degraded_start_for_are_failed_once(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("hotline.state")
    with caplog.at_level(logging.INFO):
        log_event(logger, "calendar_unavailable", level=logging.WARNING, call="b", error="TimeoutError")
        log_event(logger, "notices_unavailable", level=logging.WARNING, call="b", error="TimeoutError")
        log_event(logger, "lookup_timeout", level=logging.WARNING, call="a", budget_ms=300)
        log_event(logger, "call_to_fallback", level=logging.WARNING, call="gone", reason="at_capacity")
        log_event(logger, "caller_identified", call="c")
    lines = [f"2026-11-23 18:00:00,000 WARNING hotline.state {r.getMessage()}" for r in caplog.records]
    degraded = degraded_calls(lines)
    assert degraded == {"b": "calendar_unavailable", "a": "lookup_timeout", "gone": "call_to_fallback"}
    journeys = [journey("a", VIP.phone, customer_id=None, menu=DEFAULT_MENU),  # failed by its journey already
                journey("b", ELDERLY.phone), journey("c", STANDARD.phone)]
    check = check_journeys(4, journeys, CUSTOMERS, degraded)  # "gone" left no journey: missing
    assert (check.missing, check.lost_personalisation, check.degraded, check.failed) == (1, 1, 1, 3)
    assert check.reasons["calendar_unavailable"] == 1


def test_the_bench_callers_import_as_customers_of_their_segment(tmp_path: Path) -> None:
    lines = customers_csv(tmp_path / "c.csv", CUSTOMERS.values()).read_text().splitlines()
    assert lines[0].startswith("customer_id,phone,name,salutation,segment,language")
    assert [line.split(",")[4] for line in lines[1:]] == ["standard", "vip", "elderly"]


async def test_a_steps_journeys_are_read_from_postgresql_within_its_window(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for call_id, started, dnis in (("in", NOW, "95000"), ("before", NOW - timedelta(seconds=1), "95000"),
                                       ("other-line", NOW, "95001")):
            await conn.execute("INSERT INTO calls (call_id, started_at, ended_at, caller, dnis, customer_id,"
                               " menu_version, outcome) VALUES ($1, $2, $2, $3, $4, $5, 1, 'hangup')",
                               call_id, started, VIP.phone, dnis, VIP.customer_id)
        for seq, node in enumerate(("entry", "menu_vip", "goodbye"), start=1):
            await conn.execute("INSERT INTO call_nodes (call_id, seq, node_id, entered_at) VALUES ('in', $1, $2, $3)",
                               seq, node, NOW)
        journeys = await step_journeys(conn, "95000", NOW, NOW + timedelta(seconds=30))
    finally:
        await conn.close()
    assert [(j.call_id, tuple(j.nodes), j.customer_id) for j in journeys] == [
        ("in", ("entry", "menu_vip", "goodbye"), VIP.customer_id)]
    assert check_journeys(1, journeys, CUSTOMERS).failed == 0


async def test_the_journey_write_lag_is_from_the_calls_end_to_its_end_reaching_postgresql(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    written = conn.transaction()
    await written.start()
    try:  # rolled back: the trigger is the bench's, never left in the suite's database
        await install_write_clock(conn)
        ended = datetime.now(UTC) - timedelta(milliseconds=80)
        await conn.execute("INSERT INTO calls (call_id, started_at, caller, dnis) VALUES ('late', $1, $2, '95000')",
                           ended - timedelta(seconds=3), VIP.phone)
        await conn.execute("UPDATE calls SET ended_at = $1, outcome = 'hangup' WHERE call_id = 'late'", ended)
        await conn.execute("INSERT INTO calls (call_id, started_at, ended_at, caller, dnis) VALUES ('at-once', $1, $2,"
                           " $3, '95000')", ended - timedelta(seconds=3), ended, VIP.phone)
        await conn.execute("INSERT INTO calls (call_id, started_at, caller, dnis) VALUES ('open', $1, $2, '95000')",
                           ended, VIP.phone)  # not ended yet: no lag
        count, p50, p99 = await write_lag(conn, "95000", ended - timedelta(seconds=10), datetime.now(UTC))
        none = await write_lag(conn, "95001", ended - timedelta(seconds=10), datetime.now(UTC))
    finally:
        await written.rollback()
        await conn.close()
    assert count == 2
    assert p50 is not None and p99 is not None and 80 <= p50 <= p99 < 5000
    assert none == (0, None, None)


# --- capacity and goals --------------------------------------------------------------------------
def step(mode: str, rate: int, failed: int = 0, **figures: object) -> Step:
    result = Step(mode=mode, rate=rate, seconds=20, placed=rate * 20, sipp_failed=failed)
    for name, value in figures.items():
        setattr(result, name, value)
    return result


def test_the_highest_clean_rate_stops_at_the_first_failed_step() -> None:
    steps = [step(NATIVE, 20), step(NATIVE, 40), step(NATIVE, 60, failed=3), step(NATIVE, 80),
             step(PRODUCT, 20, failed=1)]
    assert highest_clean_rate(steps, NATIVE) == 40, "a clean step above a failed one is luck"
    assert highest_clean_rate(steps, PRODUCT) is None


def test_goals_say_which_are_met_and_by_how_much_the_others_are_missed() -> None:
    steps = [step(NATIVE, 100), step(NATIVE, 120), step(NATIVE, 140, failed=5), step(PRODUCT, 60, app_cpu_ms=1200.0 * 5, ari_requests=6000,
                                                       prompt_steps=2400,
                                                       latency={"first_prompt": Latency(1200, 8.0, 31.0)}),
             step(PRODUCT, 80, failed=2)]
    rows = {g.figure: g for g in goals(steps, scale={"calls": 2000, "memory_per_call_kb": 40.0},
                                       reload={"rate": 40, "placed": 800, "failed": 0, "switch_s": 1.5})}
    ratio = rows["P1 capacity ratio product / native"]
    assert (ratio.measured, ratio.met, ratio.note) == ("0.50×", False, "missed by 0.4 (44 %)")
    cpu = rows["P2 app CPU per ARI request (worst step)"]
    assert (cpu.measured, cpu.met) == ("1 ms", False)
    assert rows["P2 ARI requests per menu step (worst step)"].met is True  # 2.5
    first = rows["P3 StasisStart → first prompt p99 at 60 calls/s"]
    assert (first.measured, first.met, first.note) == ("31 ms", False, "missed by 11 (55 %)")
    assert rows["P4 memory per call (2000 calls, one process)"].met is True
    assert rows["P5 publish under load at 40 calls/s: failed calls"].met is True
    assert rows["P5 publish → first call on the new version"].met is False
    assert "| MISSED |" in goals_markdown(list(rows.values()))


def test_a_results_table_with_a_missed_goal_says_where_why_is_measured(tmp_path: Path) -> None:
    def result(memory_per_call_kb: float) -> dict[str, object]:
        return {"_steps": [step(NATIVE, 20), step(PRODUCT, 20)], "measured_at": "2026-11-23T10:00:00",
                "host": "h", "cpus": 2, "config": {"rates": [20], "step_s": 20}, "load_average_at_start": [0, 0, 0],
                "scale": {"calls": 2000, "memory_per_call_kb": memory_per_call_kb},
                "reload": {"rate": 20, "placed": 400, "failed": 0, "switch_s": 0.1}}

    _, _, markdown = write_results(result(memory_per_call_kb=60.0), tmp_path / "missed")  # goal ≤ 50 KB
    assert MISSED_WHY in markdown and (tmp_path / "missed" / "latest.md").read_text(encoding="utf-8") == markdown
    assert MISSED_WHY not in write_results(result(memory_per_call_kb=40.0), tmp_path / "met")[2]
    assert "(../PROFILE.md)" in MISSED_WHY and (Path(__file__).parents[2] / "bench" / "PROFILE.md").is_file()


def test_a_native_run_clean_at_every_rate_tried_leaves_the_ratio_open() -> None:
    rows = {g.figure: g for g in goals([step(NATIVE, 20), step(NATIVE, 40), step(PRODUCT, 20), step(PRODUCT, 40)],
                                       scale=None, reload=None)}
    ratio = rows["P1 capacity ratio product / native"]
    assert ratio.measured == "1.00×"
    assert "highest rate tried (40/s)" in ratio.note


def test_what_ari_costs_asterisk_is_compared_at_the_highest_rate_both_modes_ran() -> None:
    steps = [step(NATIVE, 20, asterisk_cpu_ms=400 * 11.0), step(NATIVE, 40, asterisk_cpu_ms=800 * 12.0),
             step(PRODUCT, 20, asterisk_cpu_ms=400 * 15.0, app_cpu_ms=400 * 8.0),
             step(PRODUCT, 40, asterisk_cpu_ms=800 * 16.5, app_cpu_ms=800 * 9.0)]
    row = next(g for g in goals(steps, scale=None, reload=None) if g.figure.startswith("P2 Asterisk"))
    assert row.figure == "P2 Asterisk CPU per call at 40 calls/s, product vs native"
    assert (row.measured, row.note) == ("16.5 vs 12 ms (+4.50 ms)", "app CPU 9.0 ms per call")


def test_figures_not_measured_are_said_so_never_met() -> None:
    rows = goals([step(NATIVE, 20)], scale={"error": "bench/scale.py is not there yet"}, reload=None)
    unmeasured = [g for g in rows if g.measured == "not measured"]
    assert unmeasured and all(g.met is None for g in unmeasured)
    assert any("bench/scale.py is not there yet" in g.note for g in rows)


# --- the native baseline -------------------------------------------------------------------------
def test_the_native_baseline_plays_the_bench_menus_prompts_on_its_own_line(tmp_path: Path) -> None:
    dialplan = (rendered(tmp_path) / "extensions.conf").read_text()
    values = yaml.safe_load((REPO / "config" / "sandbox.yaml").read_text())
    line = values["bench"]["native_line"]
    assert f"exten => {line},1,Goto(hotline-bench-native,s,1)" in dialplan
    native = dialplan.split("[hotline-bench-native]", 1)[1].split("\n[", 1)[0]
    apps = re.findall(r"^(?:exten => s,1|\s*same => n),(\w+)\(([^)]*)\)", native, re.M)
    assert [app for app, _ in apps] == ["Answer", "Read", "Playback", "Hangup"]
    document = yaml.safe_load(FLOWS.read_text())
    nodes = document["flows"]["bench"]["nodes"]
    menu_sound = re.search(r"sound\('(\w+)'\)", nodes["menu_standard"]["prompt"])
    goodbye_sound = re.search(r"sound\('(\w+)'\)", nodes["goodbye"]["prompt"])
    assert menu_sound and goodbye_sound
    assert apps[1][1] == f"HOTLINE_BENCH_KEY,hotline/zh/{menu_sound.group(1)},1,,1,5", "one key, type-ahead"
    assert apps[2][1] == f"hotline/zh/{goodbye_sound.group(1)}"
    assert list(nodes["menu_standard"]["options"]) == ["1"], "the caller's key in bench/uac.xml"
    assert "dtmf_2833_1.pcap" in (FLOWS.parent / "uac.xml").read_text()
