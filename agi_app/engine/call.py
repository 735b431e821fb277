"""The hotline's handling of one call, start to end: the arrows of a call's way through.

answer → identify the caller (directory, under a budget) → pick the line's flow from the menu
version pinned at call start → walk the flow → hang up if the flow ended without handing off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agi_app.directory.models import Customer
from agi_app.directory.service import Directory
from agi_app.engine.session import CallSession
from agi_app.flows.model import FlowSet, Line
from agi_app.flows.runner import FlowRunner
from agi_app.media.resolver import MediaResolver

TIMEZONE = ZoneInfo("Asia/Shanghai")


def time_of_day(now: datetime) -> str:
    hour = now.astimezone(TIMEZONE).hour
    return "morning" if 5 <= hour < 12 else "afternoon" if 12 <= hour < 18 else "evening"


def prompt_context(customer: Customer | None, line: Line, now: datetime) -> dict[str, Any]:
    """What prompt templates may use. Only pre-authentication data: no accounts, no balances."""
    return {
        "customer": asdict(customer) if customer else None,
        "line": {"number": line.number, "name": line.name},
        "time_of_day": time_of_day(now),
    }


class HotlineCall:
    """The call handler the dispatcher runs as each call's task."""

    def __init__(self, directory: Directory, current_flows: Callable[[], FlowSet], media: MediaResolver,
                 *, clock: Callable[[], datetime] = lambda: datetime.now(TIMEZONE)) -> None:
        self.directory = directory
        self.current_flows = current_flows
        self.media = media
        self.clock = clock

    async def __call__(self, call: CallSession) -> None:
        flows = self.current_flows()  # pinned: a reload during this call does not affect it
        line, known = flows.line_for(call.info.dnis)
        if not known:
            call.log("unknown_line", level=logging.WARNING, dnis=call.info.dnis, using=line.number)
        await call.answer()
        identity = await self.directory.identify(call.info.caller, call_id=call.call_id)
        customer = identity.customer
        language = customer.language if customer else line.language
        call.journey.identified(customer_id=customer.customer_id if customer else None,
                                segment=customer.segment if customer else None,
                                language=language, menu_version=flows.version)
        context = prompt_context(customer, line, self.clock())
        await FlowRunner(call, flows, line, language, context, self.media).run()
        if not call.handed_off:
            await call.hangup()
