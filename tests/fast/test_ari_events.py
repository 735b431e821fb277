"""Parsing ARI's WebSocket messages: once, into typed events, and never raising on odd input."""

from __future__ import annotations

from typing import Any

import pytest

from agi_app.ari.events import OtherEvent, StasisStart, parse_event


@pytest.mark.parametrize("message", [
    [],
    "StasisStart",
    42,
    None,
    {"type": "StasisStart", "channel": "not-an-object"},
    {"type": "StasisStart", "channel": {"id": "1", "caller": "13800138000"}},
    {"type": "PlaybackFinished", "playback": ["x"]},
    {"type": "ChannelDtmfReceived", "channel": {"id": "1"}, "digit": "1", "duration_ms": "long"},
])
def test_a_message_of_the_wrong_shape_becomes_an_other_event_instead_of_killing_the_reader(message: Any) -> None:
    assert isinstance(parse_event(message), OtherEvent)


def test_a_well_formed_stasis_start_is_typed() -> None:
    event = parse_event({"type": "StasisStart", "application": "hotline", "args": ["95000"],
                         "channel": {"id": "c1", "name": "PJSIP/caller-1", "caller": {"number": "13800138000"}}})
    assert isinstance(event, StasisStart)
    assert (event.channel.id, event.channel.caller_number, event.args) == ("c1", "13800138000", ("95000",))
