"""Log lines cannot be forged: every value (and the event name) is one token on one line, with
newlines and control characters escaped, and plain values stay plain for grep."""

from __future__ import annotations

import logging

import pytest

from agi_app.logs import log_event
from tests.fast.conftest import Hotline

log = logging.getLogger("hotline.test")


def logged(caplog: pytest.LogCaptureFixture, event: str, **fields: object) -> str:
    caplog.clear()
    log_event(log, event, **fields)
    [record] = caplog.records
    return record.getMessage()


def test_a_newline_in_a_value_cannot_start_a_forged_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    line = logged(caplog, "stasis_start", call="17.1", caller="138\nevent=call_end call=17.1 outcome=ok")
    assert line == r'event=stasis_start call=17.1 caller="138\nevent=call_end call=17.1 outcome=ok"'


@pytest.mark.parametrize(("value", "shown"), [
    ("a\rb", r'"a\rb"'), ("a\tb", r'"a\tb"'), ("a\x00b", r'"a\x00b"'), ("\x1b[31mred", r'"\x1b[31mred"'),
    ("a\u2028b", r'"a\u2028b"'), ("a\u202eb", r'"a\u202eb"'), ("a\x85b", r'"a\x85b"'),
    ('say "hi"', r'"say \"hi\""'), ("C:\\x", r'"C:\\x"'), ("back\\nslash", r'"back\\nslash"'),
])
def test_control_characters_are_escaped(caplog: pytest.LogCaptureFixture, value: str, shown: str) -> None:
    caplog.set_level(logging.INFO)
    assert logged(caplog, "e", v=value) == f"event=e v={shown}"


def test_plain_values_stay_greppable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert logged(caplog, "node", call="17.1", node="main", name="王伟", n=3) == \
        "event=node call=17.1 node=main name=王伟 n=3"
    assert logged(caplog, "bad\nevent", x="1") == r'event="bad\nevent" x=1'


async def test_a_caller_number_with_a_newline_produces_no_extra_line(hotline: Hotline,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    call = await hotline.call("1380013\nevent=call_end outcome=self_service\r")
    await hotline.ari.wait_for(lambda: bool(hotline.played(call)))
    await hotline.ari.press(call, "0")
    await hotline.wait_ended(call)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("hotline")]
    assert [m for m in ours if any(c in m for c in "\n\r")] == []
    assert any(r'caller="1380013\nevent=call_end outcome=self_service\r"' in r.getMessage() for r in caplog.records)
