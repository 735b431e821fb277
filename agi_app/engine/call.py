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

    async def __call__(self, call: CallSession, *, at: datetime | None = None,
                       listener: FlowListener | None = None) -> None:
        flows = self.current_flows()  # pinned: a reload during this call does not affect it
        line, known = flows.line_for(call.info.dnis)
        if not known:
            call.log("unknown_line", level=logging.WARNING, dnis=call.info.dnis, using=line.number)
        await call.answer()
        state = await self.state.load(caller=call.info.caller, line=line.number, call_id=call.call_id, at=at)
        customer = state.identity.customer
        language = customer.language if customer else line.language
        call.journey.identified(customer_id=customer.customer_id if customer else None,
                                segment=customer.segment if customer else None,
                                language=language, menu_version=flows.version)
        ctx = CallContext(caller=call.info.caller, line=line, language=language, now=state.now, customer=customer,
                          calendar=state.calendar, notices=state.notices, emergency=state.emergency,
                          bill_due_days=flows.bill_due_days)
        call.log("call_context", language=language, calendar=state.calendar.status,
                 emergency="on" if state.emergency else None, notices=len(state.notices) or None,
                 menu_version=flows.version)
        if state.emergency is not None:
            call.journey.node(EMERGENCY_NODE)
            items: list[MediaItem] = [Sound(state.emergency.sound, language)] if state.emergency.sound else []
            spoken = state.emergency.text(language)
            if not items and spoken:
                items = [Speech(*spoken)]
            await call.play(await self.media.uris(items or [Sound("emergency_default", language)],
                                                  call_id=call.call_id), interruptible=False)
        await FlowRunner(call, flows, ctx, self.media, self.services, listener).run()
        if not call.handed_off:
            await call.hangup()
