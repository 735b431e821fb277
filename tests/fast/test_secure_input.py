"""Secure input leaves no trace. A PIN typed on a real call (fake ARI, real server, real PostgreSQL)
appears nowhere — not in the log, not in any table — even typed ahead of its prompt, typed into a
menu, or followed by extra digits; templates see it only masked; caller-supplied text in a template
is speech of that text, never other media."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from agi_app.admin.simulate import SimulatedChannel, simulated_session
from agi_app.engine.dtmf import DtmfBuffer
from agi_app.engine.journey import JourneyRecord, MemorySink
from agi_app.flows.context import FlowContext
from agi_app.flows.loader import FlowFileError, build, load_document
from agi_app.flows.prompts import PromptError, render
from agi_app.flows.runner import FlowRunner
from agi_app.media.items import Sound, Speech
from agi_app.media.resolver import MediaResolver
from agi_app.secure import SecretDigits
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import every_table, fetch, running_hotline, settings_for, without_times
from tests.fast.flowkit import NOON, doc

PIN = "739164"


async def test_a_pin_leaves_no_trace(fake_ari: FakeAri, dsn: str, tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    flows, _ = load_document(doc({
        "hello": {"type": "announcement", "prompt": "{{ sound('welcome') }}", "next": "pin"},
        "pin": {"type": "collect", "prompt": "{{ sound('enter_pin') }}", "variable": "pin", "secure": True,
                "min_length": 6, "max_length": 6, "timeout": 2, "next": "bye"},
        "bye": {"type": "hangup", "prompt": "{{ sound('goodbye') }}"},
    }, start="hello"), version=1)
    fake_ari.media_duration = lambda uri: 0.3
    async with running_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path), flows) as line:
        call = await line.call("13800138000")
        await fake_ari.wait_for(lambda: bool(line.played(call)))
        await fake_ari.press(call, PIN[:2])  # typed ahead, during the welcome...
        await fake_ari.wait_for(lambda: bool(fake_ari.channel(call).stopped))  # ...which they stop
        await fake_ari.press(call, PIN[2:])
        row = await line.wait_ended(call)
    assert row["path"] == ["hello", "pin", "bye"]
    assert row["inputs"] == [{"node": "pin", "input": "******", "result": "ok"}]
    tables, logged = without_times(await every_table(dsn)), without_times(caplog.text)
    assert PIN not in logged and PIN[2:] not in logged
    assert PIN not in tables and PIN[2:] not in tables


# --- digits beyond a secure entry, and secrets typed into the wrong prompt ------------------------
PIN_AHEAD = "582736"  # typed into a menu before the PIN prompt: no key of it is an option
EXTRA = "4862"  # typed after the 6-digit PIN: an 8-or-more-digit string into a PIN prompt


def logged_inputs(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The `input=` values of `event=input` lines, in order."""
    return [m.group(1) for r in caplog.records if r.getMessage().startswith("event=input ")
            for m in [re.search(r" input=(\S+)", r.getMessage())] if m]


async def test_extra_digits_and_a_pin_typed_ahead_into_a_menu_leave_no_trace(
        fake_ari: FakeAri, dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    flows, _ = load_document(doc({
        "menu": {"type": "menu", "prompt": "{{ sound('menu_main') }}", "timeout": 5, "max_invalid": 9,
                 "on_invalid_exceeded": "bye", "options": {"1": {"next": "pin"}}},
        "pin": {"type": "collect", "prompt": "{{ sound('enter_pin') }}", "variable": "pin", "secure": True,
                "min_length": 6, "max_length": 6, "timeout": 5, "next": "after"},
        "after": {"type": "menu", "prompt": "{{ sound('menu_card') }}", "timeout": 5, "max_invalid": 9,
                  "on_invalid_exceeded": "bye", "options": {"1": {"next": "bye"}}},
        "bye": {"type": "hangup", "prompt": "{{ sound('goodbye') }}"},
    }, start="menu"), version=1)
    fake_ari.media_duration = lambda uri: 0.3
    async with running_hotline(fake_ari, dsn, settings_for(fake_ari, dsn, tmp_path), flows) as line:
        call = await line.call("13800138000")
        await line.heard(call, "sound:hotline/en/menu_main")
        # A PIN typed into the menu, then the option, then the PIN with extra digits, all typed ahead.
        await fake_ari.press(call, PIN_AHEAD + "1" + PIN + EXTRA)
        await line.heard(call, "sound:hotline/en/menu_card")
        await fake_ari.press(call, "1")
        row = await line.wait_ended(call)
    assert row["path"] == ["menu", "pin", "after", "bye"]
    assert row["inputs"] == [*[{"node": "menu", "input": "", "result": "invalid"}] * len(PIN_AHEAD),
                             {"node": "menu", "input": "1", "result": "option"},
                             {"node": "pin", "input": "******", "result": "ok"},
                             {"node": "after", "input": "1", "result": "option"}], "extra digits never reach `after`"
    tables, logged = without_times(await every_table(dsn)), without_times(caplog.text)
    stored = "".join(r["input"] for r in await fetch(dsn, "SELECT input FROM call_inputs ORDER BY seq"))
    for secret in (PIN, PIN_AHEAD, EXTRA):
        assert secret not in logged and secret not in tables
        assert secret not in "".join(logged_inputs(caplog)) and secret not in stored
    assert any("event=dtmf_discarded" in r.getMessage() and "discarded=4" in r.getMessage() for r in caplog.records)


NEXT_MENU = {"type": "menu", "prompt": "{{ sound('menu_main') }}", "timeout": 0.5, "max_timeout": 1,
             "max_invalid": 5, "on_timeout_exceeded": "bye", "on_invalid_exceeded": "bye",
             "options": {"1": {"next": "bye"}}}
BYE = {"type": "hangup", "prompt": "{{ sound('goodbye') }}"}


async def run(document: dict[str, Any], digits: str = "", *, then: str = "", validated: bool = True
              ) -> tuple[JourneyRecord, SimulatedChannel, MemorySink, FlowContext]:
    """Run a flow on the real engine over a simulated channel: `digits` typed ahead, `then` typed
    while it runs (a key every 50 ms). Unvalidated, it shows what a caller would hear if a flow
    that validation refuses slipped through."""
    flows = load_document(document)[0] if validated else build(document)
    session, channel, sink = simulated_session("13800138000", "95000")
    session.secure_quiet_gap_s = 0.3
    for digit in digits:
        session.on_dtmf(digit)

    async def typing() -> None:
        for digit in then:
            await asyncio.sleep(0.05)  # the caller's pace: keys arrive while the flow runs
            session.on_dtmf(digit)

    line, _ = flows.line_for("95000")
    ctx = FlowContext(caller="13800138000", line=line, language="en", now=NOON)
    typist = asyncio.create_task(typing())
    try:
        await FlowRunner(session, flows, ctx, MediaResolver(None)).run()
    finally:
        typist.cancel()
    return session.journey.record, channel, sink, ctx


@pytest.mark.parametrize(("typed", "ended_by"), [
    ("654321" + "77", "max length"), ("4321#" + "77", "terminator"), ("12#34#" + "77", "attempts exhausted"),
])
async def test_digits_typed_after_a_secure_collect_never_reach_the_next_menu(typed: str, ended_by: str) -> None:
    nodes = {"pin": {"type": "collect", "prompt": "{{ sound('enter_pin') }}", "variable": "pin", "secure": True,
                     "min_length": 4, "max_length": 6, "max_attempts": 2, "timeout": 2, "inter_digit_timeout": 2,
                     "next": "next", "on_failure": "next"},
             "next": NEXT_MENU, "bye": BYE}
    _, _, sink, _ = await run(doc(nodes, start="pin"), then=typed)
    after = [(shown, result) for _, node_seq, shown, result in sink.inputs if node_seq == 2]
    assert after == [("", "timeout")], ended_by


async def test_digits_arriving_within_the_quiet_gap_are_discarded_too() -> None:
    buffer = DtmfBuffer()
    buffer.push("7")
    quiet = asyncio.create_task(buffer.discard_until_quiet(0.4, at_most=5))
    await asyncio.sleep(0.1)  # the caller pauses, for less than the quiet gap
    buffer.push("8")  # still typing: discarded, and the gap starts again
    await asyncio.sleep(0.1)
    buffer.push("9")
    assert await quiet == (3, True) and len(buffer) == 0
    buffer.push("1")  # after the gap, keys are the caller's next choice again
    assert buffer.pop_nowait() == "1"


async def test_keys_that_never_pause_are_discarded_for_a_bounded_time_only() -> None:
    """A flood (or a backlog Asterisk delivers, paced) must not hold the call in silence."""
    buffer = DtmfBuffer()
    loop = asyncio.get_running_loop()
    started = loop.time()
    quiet = asyncio.create_task(buffer.discard_until_quiet(0.2, at_most=0.5))
    while not quiet.done():
        buffer.push("7")  # never a pause as long as the quiet gap
        await asyncio.sleep(0.05)
    discarded, paused = quiet.result()
    assert not paused and discarded >= 8 and 0.5 <= loop.time() - started < 0.7
    buffer.push("1")  # the call went on: later keys are the next prompt's
    assert buffer.pop_nowait() == "1"


async def test_invalid_keys_and_survey_non_answers_are_recorded_without_their_value() -> None:
    menu = {"menu": {**NEXT_MENU, "timeout": 0.05, "max_invalid": 2}, "bye": BYE}
    _, _, sink, _ = await run(doc(menu), "78")
    assert [(i[2], i[3]) for i in sink.inputs] == [("", "invalid"), ("", "invalid")]
    survey = {"s": {"type": "survey", "prompt": "{{ sound('survey_intro') }}", "timeout": 0.05, "next": "bye"},
              "bye": BYE}
    _, _, sink, _ = await run(doc(survey, start="s"), "8")
    assert [(i[2], i[3]) for i in sink.inputs] == [("", "no_answer")]
    plain = {"acct": {"type": "collect", "prompt": "x", "variable": "acct", "min_length": 4, "max_length": 8,
                      "timeout": 0.05, "max_attempts": 1, "next": "bye", "on_failure": "bye"}, "bye": BYE}
    _, _, sink, _ = await run(doc(plain, start="acct"), "12#")
    assert [(i[2], i[3]) for i in sink.inputs] == [("", "invalid")]


# --- templates see a secure value only masked ----------------------------------------------------
SECURE_COLLECT = {"type": "collect", "prompt": "{{ sound('enter_pin') }}", "variable": "pin", "secure": True,
                  "min_length": 6, "max_length": 6, "timeout": 0.1, "inter_digit_timeout": 0.1, "next": "say"}
REVEALING = [
    "{{ vars.pin.reveal() }}", "{{ vars.pin._digits }}", "{{ vars.pin.__reduce__() }}",
    "{{ vars.pin.__getattribute__('_digits') }}", "{{ vars['pin'] }}", "{{ digits(vars.pin) }}",
    "{% for v in vars.values() %}{{ v.reveal() }}{% endfor %}", "{{ vars.pin.masked }}",
]


@pytest.mark.parametrize("template", REVEALING)
async def test_a_template_cannot_speak_a_secure_value(template: str) -> None:
    nodes = {"pin": SECURE_COLLECT, "say": {"type": "announcement", "prompt": template, "next": "bye"}, "bye": BYE}
    record, channel, _, ctx = await run(doc(nodes, start="pin"), PIN, validated=False)
    with pytest.raises(PromptError):
        render({"*": template}, "en", ctx.template_context())
    assert record.path == ["pin", "say", "bye"]
    assert channel.played[-2:] == ["sound:hotline/en/technical_difficulty", "sound:hotline/en/goodbye"]


def test_the_template_context_holds_no_secure_digits() -> None:
    flows, _ = load_document(doc(), version=1)
    line, _ = flows.line_for("95000")
    ctx = FlowContext(caller="1", line=line, language="en", now=NOON,
                      variables={"pin": SecretDigits(PIN), "acct": "1234"})
    seen = ctx.template_context()["vars"]
    assert not isinstance(seen["pin"], SecretDigits) and str(seen["pin"]) == "******"
    assert not any(PIN in str(referent) for referent in gc.get_referents(seen["pin"]))
    assert seen["acct"] == "1234"
    with pytest.raises(PromptError):  # even handed the real thing, the sandbox refuses to open it
        render({"*": "{{ pin.reveal() }}"}, "en", {"pin": SecretDigits(PIN)})


@pytest.mark.parametrize("template", ["{{ vars.pin }}", "{{ number(vars.pin) }}", "{{ vars.pin.reveal() }}"])
def test_validation_renders_secure_variables_with_secure_samples(template: str) -> None:
    nodes = {"pin": SECURE_COLLECT, "say": {"type": "announcement", "prompt": template, "next": "bye"}, "bye": BYE}
    with pytest.raises(FlowFileError) as refused:
        load_document(doc(nodes, start="pin"))
    assert {i.where for i in refused.value.issues} == {"main/say"}
    plain = {**SECURE_COLLECT, "secure": False, "variable": "amount"}
    nodes = {"pin": plain, "say": {"type": "announcement", "prompt": "{{ number(vars.amount) }}", "next": "bye"},
             "bye": BYE}
    assert load_document(doc(nodes, start="pin"))[1] == []


# --- caller-supplied text cannot become media ----------------------------------------------------
@pytest.mark.parametrize("name", [
    "Eve\x1esound:../../etc/evil\x1e", "Eve\x1espeech:en|injected\x1e", "Eve\x00\nBob\x1e", "sound:hotline/en/x",
])
def test_a_name_renders_as_speech_of_its_text_only(name: str) -> None:
    items = render({"*": "{{ sound('welcome') }}{{ customer.name }}{{ sound('goodbye') }}"}, "en",
                   {"customer": {"name": name}})
    assert items[0] == Sound("welcome", "en") and items[-1] == Sound("goodbye", "en")
    speech = items[1:-1]
    assert len(speech) == 1 and isinstance(speech[0], Speech) and speech[0].language == "en"
    assert not any(ord(c) < 32 for c in speech[0].text)
    assert speech[0].text.startswith("Eve") or speech[0].text == name
