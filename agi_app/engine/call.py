"""The hotline's handling of one call, start to end: the arrows of a call's way through.

answer → load the call state (caller, calendar, emergency, notices; one budget) → emergency
notice first, if one is on → walk the line's flow from the menu version pinned at call start
(holiday / closed / open and the caller's segment and flags are `condition` nodes in the flow) →
hang up if the flow ended without handing the call off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from agi_app.engine.call_state import CallStateLoader
from agi_app.engine.session import CallSession
from agi_app.flows.context import CallContext
from agi_app.flows.model import FlowSet
from agi_app.flows.prompts import MediaItem, Sound, Speech
from agi_app.flows.runner import FlowListener, FlowRunner
from agi_app.flows.services import ServiceRegistry
from agi_app.media.resolver import MediaResolver

EMERGENCY_NODE = "@emergency"


class HotlineCall:
    """The call handler the dispatcher runs as each call's task (and previews/simulations too)."""

    def __init__(self, state: CallStateLoader, current_flows: Callable[[], FlowSet], media: MediaResolver,
                 services: ServiceRegistry | None = None) -> None:
        self.state = state
        self.current_flows = current_flows
        self.media = media
        self.services = services or ServiceRegistry()

    async def prepare(self, *, caller: str, dnis: str, call_id: str, at: datetime | None = None,
                      flows: FlowSet | None = None) -> tuple[FlowSet, CallContext]:
        """Pin the menus and load what this call's flow decides on (also used by `menus cost`)."""
        flows = flows or self.current_flows()
        line, _ = flows.line_for(dnis)
        state = await self.state.load(caller=caller, line=line.number, call_id=call_id, at=at)
        customer = state.identity.customer
        ctx = CallContext(caller=caller, line=line, language=customer.language if customer else line.language,
                          now=state.now, customer=customer, calendar=state.calendar, notices=state.notices,
                          emergency=state.emergency, bill_due_days=flows.bill_due_days)
        return flows, ctx

    async def __call__(self, call: CallSession, *, at: datetime | None = None,
                       listener: FlowListener | None = None) -> None:
        flows = self.current_flows()  # pinned: a reload during this call does not affect it
        line, known = flows.line_for(call.info.dnis)
        if not known:
            call.log("unknown_line", level=logging.WARNING, dnis=call.info.dnis, using=line.number)
        await call.answer()
        flows, ctx = await self.prepare(caller=call.info.caller, dnis=call.info.dnis, call_id=call.call_id,
                                               at=at, flows=flows)
        customer, language = ctx.customer, ctx.language
        call.journey.identified(customer_id=customer.customer_id if customer else None,
                                segment=customer.segment if customer else None,
                                language=language, menu_version=flows.version)
        call.log("call_context", language=language, calendar=ctx.calendar.status,
                 emergency="on" if ctx.emergency else None, notices=len(ctx.notices) or None,
                 menu_version=flows.version)
        if ctx.emergency is not None:
            call.journey.node(EMERGENCY_NODE)
            await call.play(await self.media.uris(emergency_items(ctx), call_id=call.call_id), interruptible=False)
        await FlowRunner(call, flows, ctx, self.media, self.services, listener).run()
        if not call.handed_off:
            await call.hangup()


def emergency_items(ctx: CallContext) -> list[MediaItem]:
    """The emergency notice: its recorded sound, else its text, else the default recording."""
    emergency = ctx.emergency
    if emergency is None:
        return []
    if emergency.sound:
        return [Sound(emergency.sound, ctx.language)]
    spoken = emergency.text(ctx.language)
    return [Speech(*spoken)] if spoken else [Sound("emergency_default", ctx.language)]
