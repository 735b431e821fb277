"""Queue routing: a destination's topic plus the caller's segment and language choose the skill
group — as menu data, validated, for the IVR runner and the FastAGI route hook alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agi_app.caller_facts import UNKNOWN_CALLER, CallerFacts
from agi_app.centre.routing import UnknownDestination, route
from agi_app.flows.context import FlowContext
from agi_app.flows.loader import FlowFileError, demo_flow_path, load_document, load_file
from agi_app.flows.queueing import DialTarget, queue_for
from tests.fast.flowkit import customer, doc, run_flow

DEMO, _ = load_file(demo_flow_path())
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


def facts(segment: str | None) -> CallerFacts:
    return UNKNOWN_CALLER if segment is None else CallerFacts(True, {"customer_id": "C9", "segment": segment})


def context(segment: str | None, language: str, line: str = "95000") -> FlowContext:
    return FlowContext(caller="13800138000", line=DEMO.lines[line], language=language, now=NOW, facts=facts(segment))


@pytest.mark.parametrize(("destination", "segment", "language", "group"), [
    ("general", None, "zh", "general-zh"),  # unknown caller: the line's language
    ("general", None, "en", "general-en"),
    ("general", "standard", "zh", "general-zh"),
    ("general", "standard", "en", "general-en"),
    ("general", "vip", "en", "vip"),
    ("general", "private", "zh", "vip"),
    ("general", "elderly", "zh", "elderly"),
    ("general", "elderly", "en", "elderly"),  # segment before language: the rules' order
    ("cards", "vip", "en", "cards"),  # topic desks are fixed
    ("cards", None, "zh", "cards"),
    ("complaints", "elderly", "zh", "complaints"),
    ("risk", "private", "en", "risk"),
    ("vip", "standard", "zh", "vip"),
    ("elderly", None, "en", "elderly"),
])
def test_the_demo_bank_routes_by_topic_segment_and_language(destination: str, segment: str | None, language: str,
                                                             group: str) -> None:
    assert queue_for(DEMO.destinations[destination], context(segment, language)) == group


QUEUES: dict[str, Any] = {
    "general": {"queue": "general-zh", "rules": [{"if": {"segment": ["vip", "private"]}, "queue": "vip"},
                                                 {"if": {"language": "en"}, "queue": "general-en"}]},
    "desk": {"context": "hotline-agents", "extension": "desk"},  # today's fixed form still works
}
TRANSFER = {"t": {"type": "transfer", "prompt": "{{ sound('transfer_agent') }}"}}


@pytest.mark.parametrize(("who", "language", "extension"), [
    (None, "en", "general-en"), (customer("vip"), "en", "vip"), (customer("standard", "zh"), "zh", "general-zh")])
async def test_a_transfer_continues_to_the_callers_group(who: Any, language: str, extension: str) -> None:
    record, channel, sink, _ = await run_flow(doc(TRANSFER, start="t", destinations=QUEUES), who=who,
                                              language=language)
    assert channel.continued_to == ("hotline-agents", extension, 1)
    assert record.transfer_target == "general", "the journey names the configured destination"
    assert [(leg.queue, leg.result, leg.announced_position) for leg in record.queue_legs] == [
        (extension, "waiting", None)], "the queue leg is recorded even without a desk to announce"


async def test_a_fixed_destination_is_dialled_as_configured_and_is_no_queue_leg() -> None:
    nodes = {"t": {"type": "transfer", "destination": "desk"}}
    record, channel, _, _ = await run_flow(doc(nodes, start="t", destinations=QUEUES))
    assert channel.continued_to == ("hotline-agents", "desk", 1) and record.queue_legs == []


@pytest.mark.parametrize(("destination", "message"), [
    ({"queue": "General"}, "does not match"),
    ({"queue": "vip;evil"}, "does not match"),
    ({"queue": ""}, "does not match"),
    ({"queue": "general", "rules": [{"if": {"segment": "vip"}, "queue": "../etc"}]}, "does not match"),
    ({"queue": "general", "rules": [{"if": {"segment": "vip"}}]}, "'queue' is a required property"),
    ({"queue": "general", "rules": [{"if": {"mood": "angry"}, "queue": "vip"}]}, "'mood' was unexpected"),
    ({"queue": "general", "extension": "general"}, "'extension' was unexpected"),  # one form or the other
    ({"rules": [{"if": {"segment": "vip"}, "queue": "vip"}]}, "'rules' was unexpected"),  # no default group
])
def test_a_queue_destination_is_validated(destination: dict[str, Any], message: str) -> None:
    with pytest.raises(FlowFileError) as caught:
        load_document(doc(TRANSFER, start="t", destinations={"general": destination}), file="menus.yaml")
    found = [str(issue) for issue in caught.value.issues]
    assert any(p.startswith("menus.yaml: destinations/general") and message in p for p in found), found


def test_the_route_hook_uses_the_same_rule_for_the_lines_agent_destination() -> None:
    vip_en = route(DEMO, "95000", caller="13700137000", facts=facts("vip"), now=NOW, language="en")
    assert vip_en == DialTarget("general", "hotline-agents", "vip", "vip")
    unknown = route(DEMO, "95000", caller="13111111111", facts=UNKNOWN_CALLER, now=NOW)
    assert unknown == DialTarget("general", "hotline-agents", "general-zh", "general-zh"), "the line's language"
    assert route(DEMO, "99999", caller="", facts=UNKNOWN_CALLER, now=NOW, language="en").extension == "general-en", \
        "an unknown line: the default line's agent destination"
    assert route(DEMO, "95000", caller="", facts=facts("vip"), now=NOW, destination="cards").extension == "cards"


def test_the_route_hook_never_routes_to_a_destination_that_is_not_configured() -> None:
    with pytest.raises(UnknownDestination):
        route(DEMO, "95000", caller="", facts=UNKNOWN_CALLER, now=NOW, destination="+8613900000000")
