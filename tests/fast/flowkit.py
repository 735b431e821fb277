"""Small builders for flow tests: a valid base document, and running a flow on the simulated
channel with the real engine (FlowRunner + CallSession), no Asterisk and no database."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agi_app.admin.simulate import SimulatedChannel, simulated_session
from agi_app.calendar.info import CalendarInfo
from agi_app.caller_facts import CallerFacts
from agi_app.directory.facts import caller_facts
from agi_app.directory.models import Customer
from agi_app.engine.journey import JourneyRecord, MemorySink
from agi_app.flows.context import FlowContext
from agi_app.flows.loader import load_document
from agi_app.flows.runner import FlowRunner
from agi_app.flows.services import ServiceRegistry
from agi_app.media.resolver import MediaResolver

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

BASE: dict[str, Any] = {
    "settings": {"default_language": "en"},
    "lines": {"95000": {"flow": "main", "language": "en", "agent": "general"}},
    "default_line": "95000",
    "destinations": {"general": {"context": "hotline-agents", "extension": "general"}},
    "flows": {"main": {"start": "menu", "nodes": {
        "menu": {"type": "menu", "prompt": "{{ sound('menu_main') }}", "timeout": 0.05,
                 "options": {"1": {"next": "bye"}}},
        "bye": {"type": "hangup", "prompt": "{{ sound('goodbye') }}"},
    }}},
}


def doc(nodes: dict[str, Any] | None = None, *, start: str = "menu", **top: Any) -> dict[str, Any]:
    """The base document, with `nodes` replacing the main flow's nodes and `top` merged in."""
    d = copy.deepcopy(BASE)
    if nodes is not None:
        d["flows"]["main"] = {"start": start, "nodes": nodes}
    d.update(copy.deepcopy(top))
    return d


def customer(segment: str = "standard", language: str = "en", **kw: Any) -> Customer:
    return Customer("C9", "Wang", "Mr", segment, language, ("13800138000",), **kw)


def prepare_flow(document: dict[str, Any], *, digits: str = "", who: Customer | None = None,
                 facts: CallerFacts | None = None, calendar: str = "open", services: ServiceRegistry | None = None,
                 language: str = "en") -> tuple[FlowRunner, SimulatedChannel, MemorySink]:
    """A runner for `document` on a simulated call, `digits` already typed; `who` is a directory
    customer, seen as live calls see one; `facts` what any domain says."""
    flows, _ = load_document(document, services=services.names() if services else None)
    session, channel, sink = simulated_session("13800138000", "95000")
    for digit in digits:
        session.on_dtmf(digit)
    line, _ = flows.line_for("95000")
    if facts is None:
        facts = caller_facts(who, today=NOON.date(), bill_due_days=flows.bill_due_days)
    ctx = FlowContext(caller="13800138000", line=line, language=language, now=NOON, facts=facts,
                      calendar=CalendarInfo(calendar))
    return FlowRunner(session, flows, ctx, MediaResolver(None), services), channel, sink


async def run_flow(document: dict[str, Any], **how: Any) -> tuple[JourneyRecord, SimulatedChannel, MemorySink, FlowContext]:
    """Run `document` to its end (see `prepare_flow` for `how`)."""
    runner, channel, sink = prepare_flow(document, **how)
    await runner.run()
    return runner.call.journey.record, channel, sink, runner.ctx
