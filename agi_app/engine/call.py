"""The hotline's flow for one call: the handler `lifecycle.run_call` runs for live calls,
previews and simulations.

answer → load the start facts (caller, calendar, emergency, notices; each under its budget) →
emergency notice first, if one is on → walk the line's flow from the menu version pinned at call
start (holiday / closed / open and the caller's segment and flags are `condition` nodes in the
flow). Whatever happens after — a hang-up when the flow ended without handing the call off, the
fallback, the outcome — is the lifecycle's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from agi_app.directory.facts import caller_facts
from agi_app.engine.session import CallSession
from agi_app.engine.start_facts import StartFactsLoader
from agi_app.engine.survey import SurveyRequest
from agi_app.flows.context import FlowContext
from agi_app.flows.model import FlowSet, Line
from agi_app.flows.queueing import QueueDesk
from agi_app.flows.runner import FlowListener, FlowRunner
from agi_app.flows.services import ServiceRegistry
from agi_app.flows.survey import after_agent_flows
from agi_app.media.items import MediaItem, Sound, Speech
from agi_app.media.resolver import MediaResolver

EMERGENCY_NODE = "@emergency"


class HotlineFlow:
    """What every call of the hotline does, as a `CallHandler` (and `menus cost`'s preparation)."""

    def __init__(self, start_facts: StartFactsLoader, current_flows: Callable[[], FlowSet], media: MediaResolver,
                 services: ServiceRegistry | None = None, desk: QueueDesk | None = None) -> None:
        self.start_facts = start_facts
        self.current_flows = current_flows
        self.media = media
        self.services = services or ServiceRegistry()
        self.desk = desk  # live queue advice and callbacks before a queue transfer (None: straight in)

    async def prepare(self, *, caller: str, dnis: str, call_id: str, at: datetime | None = None,
                      flows: FlowSet | None = None, line: Line | None = None) -> tuple[FlowSet, FlowContext]:
        """Pin the menus and load what this call's flow decides on (also used by `menus cost`);
        `line` when the caller already resolved `dnis`."""
        flows = flows or self.current_flows()
        line = line or flows.line_for(dnis)[0]
        state = await self.start_facts.load(caller=caller, line=line.number, call_id=call_id, at=at)
        customer = state.identity.customer
        facts = caller_facts(customer, today=state.now.date(), bill_due_days=flows.bill_due_days)
        ctx = FlowContext(caller=caller, line=line, language=customer.language if customer else line.language,
                          now=state.now, facts=facts, calendar=state.calendar, notices=state.notices,
                          emergency=state.emergency)
        return flows, ctx

    async def __call__(self, call: CallSession, *, at: datetime | None = None,
                       listener: FlowListener | None = None) -> None:
        arrival = call.arrival
        if arrival.survey is not None:
            await self.survey_after_agent(call, arrival.survey, at=at)
            return
        flows = self.current_flows()  # pinned: a reload during this call does not affect it
        line, known = flows.line_for(arrival.dnis)
        if not known:
            call.log("unknown_line", level=logging.WARNING, dnis=arrival.dnis, using=line.number)
        await call.answer()
        flows, ctx = await self.prepare(caller=arrival.caller, dnis=arrival.dnis, call_id=call.call_id, at=at,
                                        flows=flows, line=line)
        language = ctx.language
        call.journey.identified(customer_id=ctx.facts.text("customer_id"), segment=ctx.facts.text("segment"),
                                language=language, menu_version=flows.version)
        call.log("call_context", language=language, calendar=ctx.calendar.status,
                 emergency="on" if ctx.emergency else None, notices=len(ctx.notices) or None,
                 menu_version=flows.version)
        if ctx.emergency is not None:
            call.journey.node(EMERGENCY_NODE)
            await call.play(await self.media.uris(emergency_items(ctx), call_id=call.call_id), interruptible=False)
        await FlowRunner(call, flows, ctx, self.media, self.services, listener, self.desk).run()


    async def survey_after_agent(self, call: CallSession, request: SurveyRequest, *,
                                 at: datetime | None = None) -> None:
        """The caller is back from agent `request.agent`: the fixed survey flow in their language.
        Nothing is looked up: the survey says nothing about the caller."""
        call.log("survey_after_agent", original_call=request.call_id, queue=request.group, agent=request.agent)
        await call.answer()  # already answered: keeps the session's state right
        flows = after_agent_flows(request.language)
        line = flows.lines[flows.default_line]
        ctx = FlowContext(caller=call.arrival.caller, line=line, language=request.language,
                          now=at or datetime.now(UTC))
        await FlowRunner(call, flows, ctx, self.media).run()


def emergency_items(ctx: FlowContext) -> list[MediaItem]:
    """The emergency notice: its recorded sound, else its text, else the default recording."""
    emergency = ctx.emergency
    if emergency is None:
        return []
    if emergency.sound:
        return [Sound(emergency.sound, ctx.language)]
    spoken = emergency.text(ctx.language)
    return [Speech(*spoken)] if spoken else [Sound("emergency_default", ctx.language)]
