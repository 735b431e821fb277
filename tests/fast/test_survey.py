"""The satisfaction survey: after self-service (a `survey` node in the menus) and after an agent
call (the dialplan puts the caller back into the app with `survey,<call>,<group>,<agent>,<lang>`).
A score is one key from 1 to 5; a hang-up, silence or any other key is no answer, stored per call
(and agent), never with the key's value — in the database or in a log line."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from agi_app.engine.journey import MemorySink, SurveyContext
from agi_app.engine.survey import SURVEY_END, InvalidSurveyRequest, SurveyRequest
from agi_app.flows.survey import survey_score
from agi_app.monitoring.journey import MeteredJourneySink
from agi_app.monitoring.metrics import HotlineMetrics
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import Hotline, import_demo_customers, running_hotline, settings_for
from tests.fast.flowkit import doc, prepare_flow, run_flow
from tests.support.cli import hotline_cli
from tests.support.demo import DEMO_PINS, KNOWN_ZH, UNKNOWN, load_demo_bank

ORIGINAL = "1763900000.42"  # the call that reached the agent (its ARI channel id, Asterisk's UNIQUEID)
DIALPLAN_ARGS = ["survey", ORIGINAL, "general-en", "1003", "en"]
STRAY = "7"
ZH = "sound:hotline/zh/"
SURVEY = {"s": {"type": "survey", "prompt": "{{ sound('survey_intro') }}",
                "thanks_prompt": "{{ sound('survey_thanks') }}", "timeout": 0.1, "next": "bye"},
          "bye": {"type": "hangup", "prompt": "{{ sound('goodbye') }}"}}


# --- the one rule and the arguments ------------------------------------------------------------
@pytest.mark.parametrize(("digits", "score"), [("1", 1), ("5", 5), ("0", None), ("6", None), ("", None),
                                               ("#", None), ("12", None)])
def test_a_score_is_one_key_from_1_to_5(digits: str, score: int | None) -> None:
    assert survey_score(digits) == score


def test_the_dialplans_arguments_make_a_request_for_the_agent() -> None:
    request = SurveyRequest.parse(DIALPLAN_ARGS)
    assert request == SurveyRequest(ORIGINAL, "general-en", "1003", "en")
    assert request.context == SurveyContext("after_agent", queue="general-en", agent="1003")


@pytest.mark.parametrize("args", [
    ["survey", ORIGINAL, "general-en", "1003"],  # no language
    ["survey", ORIGINAL, "general-en", "", "en"],  # MEMBERNAME empty
    ["survey", ORIGINAL, "general-en", "1003", "en", "x"],
    ["survey", "", "general-en", "1003", "en"],
    ["survey", "../../etc", "general-en", "1003", "en"],
    ["survey", ORIGINAL, "general en", "1003", "en"],
    ["survey", ORIGINAL, "general-en", "PJSIP/agent-1003", "en"],
    ["survey", ORIGINAL, "general-en", "1003", "english"],
    ["95000", ORIGINAL, "general-en", "1003", "en"],
])
def test_other_arguments_are_refused_without_echoing_them(args: list[str]) -> None:
    with pytest.raises(InvalidSurveyRequest) as refused:
        SurveyRequest.parse(args)
    assert not any(len(a) > 2 and a in str(refused.value) for a in args[1:])


# --- after self-service: the survey node of a flow ----------------------------------------------
async def test_a_score_after_self_service_is_stored_for_the_call_and_thanked() -> None:
    record, channel, sink, _ = await run_flow(doc(SURVEY, start="s"), digits="4")
    assert sink.surveys == [(record.call_id, "s", 4)]
    assert sink.survey_details == [(None, SurveyContext("after_self_service"))]
    assert channel.played[-2:] == ["sound:hotline/en/survey_thanks", "sound:hotline/en/goodbye"]


@pytest.mark.parametrize(("digits", "reason"), [(STRAY, "invalid_key"), ("", "timeout")])
async def test_no_score_is_no_answer_with_its_reason_and_without_the_key(
        digits: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    record, channel, sink, _ = await run_flow(doc(SURVEY, start="s"), digits=digits)
    assert sink.surveys == [(record.call_id, "s", None)] and sink.survey_details[0][0] == reason
    assert [(i[2], i[3]) for i in sink.inputs] == [("", "no_answer")]
    assert "sound:hotline/en/survey_thanks" not in channel.played
    assert _field_values(caplog) and STRAY not in _field_values(caplog)


async def test_a_caller_who_hangs_up_during_the_survey_is_no_answer() -> None:
    runner, channel, sink = prepare_flow(doc({**SURVEY, "s": {**SURVEY["s"], "timeout": 10}}, start="s"))
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.2)
    assert channel.played == ["sound:hotline/en/survey_intro"] and not task.done()  # waiting for a key
    runner.call.on_hangup()  # what the registry does when the caller hangs up
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.surveys == [(runner.call.call_id, "s", None)] and sink.survey_details[0][0] == "hangup"


# --- after an agent call: the caller back in the app ---------------------------------------------
async def _survey_rows(dsn: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT call_id, node_id, kind, queue, agent, score, result, no_answer"
                                " FROM survey_answers ORDER BY at")
        return [dict(r) for r in rows]
    finally:
        await conn.close()


async def _back_from_agent(line: Hotline, args: list[str] = DIALPLAN_ARGS) -> str:
    call = await line.ari.place_call(UNKNOWN, "95000", args=args)
    await line.heard(call, "sound:hotline/en/survey_intro")
    return call


async def _ended(line: Hotline, call: str) -> None:
    await line.ari.wait_for(lambda: line.ari.channel(call).hungup)
    await line.ari.wait_for(lambda: call not in line.server.calls.sessions)
    await line.server.sink.flush()


async def test_a_caller_back_from_the_agent_rates_them_and_the_original_call_stays_as_it_was(
        fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    async with running_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path)) as line:
        original = await line.call(UNKNOWN)
        await fake_ari.press(original, "0")  # the agent key: transferred to the general queue
        before = await line.wait_ended(original)
        assert before["outcome"] == "transferred"
        call = await _back_from_agent(line, ["survey", original, "general-en", "1003", "en"])
        await fake_ari.press(call, "4")
        await _ended(line, call)
        after = await line.wait_ended(original)
    assert fake_ari.channel(call).played == ["sound:hotline/en/survey_intro", "sound:hotline/en/survey_thanks",
                                             "sound:hotline/en/goodbye"]
    assert await _survey_rows(dsn) == [{"call_id": original, "node_id": "survey", "kind": "after_agent",
                                        "queue": "general-en", "agent": "1003", "score": 4, "result": "ok",
                                        "no_answer": None}]
    # The survey is not a call of its own, and the call it rates keeps its journey.
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM calls WHERE call_id = $1", call) == 0
        assert await conn.fetchval("SELECT count(*) FROM call_nodes WHERE call_id = $1 AND node_id = 'survey'",
                                   original) == 0
    finally:
        await conn.close()
    assert {k: v for k, v in after.items() if not k.startswith("survey")} == {
        k: v for k, v in before.items() if not k.startswith("survey")}
    # `hotline calls list` shows the score and whom it rates on the call it rates.
    listed = json.loads(hotline_cli(dsn, "calls", "list", "--json", "--call-id", original).stdout)
    assert before["survey"] is None and listed[0]["survey"] == 4
    assert listed[0]["surveys"] == [{"kind": "after_agent", "node": "survey", "score": 4, "result": "ok",
                                     "no_answer": None, "queue": "general-en", "agent": "1003"}]
    text = hotline_cli(dsn, "calls", "list", "--call-id", original).stdout
    assert "survey: 4/5" in text


async def test_a_stray_key_is_no_answer_and_its_value_is_nowhere(
        fake_ari: FakeAri, dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path)) as line:
        call = await _back_from_agent(line)
        await fake_ari.press(call, STRAY)
        await _ended(line, call)
    assert fake_ari.channel(call).played == ["sound:hotline/en/survey_intro", "sound:hotline/en/goodbye"]
    rows = await _survey_rows(dsn)
    assert rows == [{"call_id": ORIGINAL, "node_id": "survey", "kind": "after_agent", "queue": "general-en",
                     "agent": "1003", "score": None, "result": "no_answer", "no_answer": "invalid_key"}]
    conn = await asyncpg.connect(dsn)
    try:
        inputs = await conn.fetch("SELECT input FROM call_inputs")
    finally:
        await conn.close()
    assert all(STRAY not in str(r["input"]) for r in inputs)
    values = _field_values(caplog)
    assert "survey" in values and "invalid_key" in values  # the lines are there ...
    assert STRAY not in values  # ... without the key


async def test_a_caller_who_hangs_up_instead_of_rating_the_agent_is_no_answer(
        fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    async with running_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path)) as line:
        call = await _back_from_agent(line)
        await fake_ari.hangup(call)
        await _ended(line, call)
    rows = await _survey_rows(dsn)
    assert [(r["call_id"], r["agent"], r["result"], r["no_answer"]) for r in rows] == [
        (ORIGINAL, "1003", "no_answer", "hangup")]


async def test_arguments_not_from_the_dialplan_get_the_goodbye_and_no_survey(
        fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    async with running_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path)) as line:
        call = await fake_ari.place_call(UNKNOWN, "95000", args=["survey", ORIGINAL, "general-en", "a b", "en"])
        await fake_ari.wait_for(lambda: fake_ari.channel(call).continued_to is not None)
        assert call not in line.server.calls.sessions
    assert fake_ari.channel(call).continued_to == (*SURVEY_END, 1)
    assert fake_ari.channel(call).played == []
    assert await _survey_rows(dsn) == []


async def test_a_survey_the_server_cannot_take_goes_to_the_goodbye_not_to_a_queue(
        fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    async with running_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path, max_calls=1)) as line:
        first = await _back_from_agent(line)
        second = await fake_ari.place_call(UNKNOWN, "95000", args=DIALPLAN_ARGS)
        await fake_ari.wait_for(lambda: fake_ari.channel(second).continued_to is not None)
        await fake_ari.press(first, "5")
        await _ended(line, first)
    assert fake_ari.channel(second).continued_to == (*SURVEY_END, 1)


async def test_a_survey_that_fails_goes_to_the_goodbye_not_to_a_queue(
        fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    async with running_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path)) as line:
        fake_ari.fault("POST", r"/play/", status=500, times=None)  # nothing can be played to the caller
        call = await fake_ari.place_call(UNKNOWN, "95000", args=DIALPLAN_ARGS)
        await fake_ari.wait_for(lambda: fake_ari.channel(call).continued_to is not None)
        await fake_ari.wait_for(lambda: call not in line.server.calls.sessions)
    assert fake_ari.channel(call).continued_to == (*SURVEY_END, 1)


def _field_values(caplog: pytest.LogCaptureFixture) -> set[str]:
    """Every value of every `key=value` field the hotline logged."""
    return {m.group(1).strip('"') for r in caplog.records if r.name.startswith("hotline")
            for m in re.finditer(r'\w+=("[^"]*"|\S+)', r.getMessage())}


# --- the demo menus: self-service callers rate it before the goodbye ------------------------------
async def test_a_demo_caller_who_checked_the_balance_rates_self_service_before_the_goodbye(
        fake_ari: FakeAri, dsn: str, tmp_path: Path) -> None:
    await import_demo_customers(dsn)
    await load_demo_bank(dsn)
    fake_ari.media_duration = lambda uri: 0.05
    settings = settings_for(fake_ari, dsn, tmp_path, secure_quiet_gap_ms=50)
    async with running_hotline(fake_ari, dsn, settings) as line:
        call = await line.call(KNOWN_ZH)
        for sound, digits in (("opt_accounts", "1"), ("opt_balance", "1"), ("enter_pin", DEMO_PINS["C001"])):
            await line.heard(call, ZH + sound)
            await fake_ari.press(call, digits)
        await line.heard(call, ZH + "survey_intro")  # the menu timed out after the balance
        await fake_ari.press(call, "5")
        row = await line.wait_ended(call)
        anonymous = await line.call(UNKNOWN)  # never logged in: no survey, straight to the goodbye
        await line.wait_ended(anonymous)
    assert row["outcome"] == "self_service" and line.played(call)[-2:] == [ZH + "survey_thanks", ZH + "goodbye"]
    assert ZH + "survey_intro" not in line.played(anonymous)
    assert await _survey_rows(dsn) == [{"call_id": call, "node_id": "rate_self_service", "kind": "after_self_service",
                                        "queue": None, "agent": None, "score": 5, "result": "ok", "no_answer": None}]


def test_metrics_count_no_answers_apart_and_the_writer_gets_whom_a_survey_rates() -> None:
    metrics, writer = HotlineMetrics(), MemorySink()
    sink = MeteredJourneySink(writer, metrics, lambda: {"95000"})
    agent = SurveyContext("after_agent", queue="general-en", agent="1003")
    sink.survey_answer(ORIGINAL, "survey", 4, context=agent)
    sink.survey_answer(ORIGINAL, "survey", None, no_answer="invalid_key", context=agent)
    assert writer.surveys == [(ORIGINAL, "survey", 4), (ORIGINAL, "survey", None)]
    assert writer.survey_details == [(None, agent), ("invalid_key", agent)]
    exposition = metrics.exposition().decode()
    assert 'hotline_survey_answers_total{score="4"} 1.0' in exposition
    assert 'hotline_survey_answers_total{score="none"} 1.0' in exposition
