"""The decisions the dialplan asks for, as channel variables: who is calling, is the line open,
which agent queue.

Built from the pieces the ARI call path uses, so a line in plain dialplan and a line in our IVR
decide alike: the caller lookup with its normalisation and time budget (`Directory`, through the
same `StartFactsLoader` the engine gets), the business calendar and the live emergency (its
sources and call-start budget), and the routing rule (`centre.routing.route` → `queue_for`).
Each source degrades as it does for an IVR call — unknown caller, calendar open, no emergency —
so a slow database slows no caller beyond its budget.

Only tokens leave here: a customer id, a segment, a language, a state, a queue name. Never a
name, an account, a balance or an administrator's free text (the emergency text stays ours: the
dialplan plays its own recording).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from agi_app.agi.request import AgiRequest, AgiRequestError
from agi_app.calendar.model import Calendar
from agi_app.centre.routing import UnknownDestination, route
from agi_app.directory.facts import caller_facts
from agi_app.directory.service import Identification
from agi_app.engine.start_facts import StartFactsLoader
from agi_app.flows.model import AGENTS_CONTEXT, FlowSet, Line
from agi_app.operations.model import Emergency

#: Channel variables a hook sets, by name.
Variables = Mapping[str, str]
Hook = Callable[[AgiRequest], Awaitable[Variables]]

#: The scripts a dialplan may call (agi://host:port/<name>).
HOOK_NAMES = ("identify", "status", "route")

#: Segment of a caller the directory does not know (or could not look up in time).
UNKNOWN_SEGMENT = "standard"


class AgiHooks:
    """identify, status and route over the engine's start facts and the current menus."""

    def __init__(self, facts: StartFactsLoader, current_flows: Callable[[], FlowSet]) -> None:
        self.facts = facts
        self.current_flows = current_flows

    def routes(self) -> dict[str, Hook]:
        """The hooks by script name: agi://host:port/<name>."""
        return {name: getattr(self, name) for name in HOOK_NAMES}

    async def identify(self, request: AgiRequest) -> Variables:
        """HOTLINE_IDENTIFY ok|unknown|degraded, HOTLINE_CUSTOMER_ID, HOTLINE_SEGMENT, HOTLINE_LANGUAGE."""
        line = self._line(request)
        identity = await self.facts.directory.identify(request.caller, call_id=request.call_id)
        customer = identity.customer
        result = "ok" if customer else "degraded" if identity.degraded else "unknown"
        return {"HOTLINE_IDENTIFY": result, "HOTLINE_CUSTOMER_ID": customer.customer_id if customer else "",
                **self._segment_and_language(identity, line)}

    async def close(self) -> None:
        """Nothing of the hooks' own runs past a request: sources cut at their budget are owned by
        `agi_app.budget`, and the server's close lets them finish before the pool closes."""

    async def status(self, request: AgiRequest) -> Variables:
        """HOTLINE_STATUS emergency|holiday|closed|open: an emergency first, as an IVR call hears it."""
        number = self._line(request).number
        at, guard, call_id = self.facts.clock(), self.facts.guard, request.call_id
        calendar, emergency = await asyncio.gather(
            guard("calendar", call_id, self._calendar(number), Calendar(), hook=request.script),
            guard("emergency", call_id, self._emergency(number, at), None, hook=request.script))
        return {"HOTLINE_STATUS": "emergency" if emergency is not None else calendar.state(at).status}

    async def route(self, request: AgiRequest) -> Variables:
        """HOTLINE_ROUTE: the hotline-agents extension (skill group) for this caller on this line,
        with the HOTLINE_SEGMENT and HOTLINE_LANGUAGE it was chosen for. The caller is looked up
        here rather than read from channel variables: a dialplan variable cannot talk a caller
        into another queue."""
        flows = self.current_flows()
        line = self._line(request, flows)
        identity = await self.facts.directory.identify(request.caller, call_id=request.call_id)
        chosen = self._segment_and_language(identity, line)
        now = self.facts.clock()
        facts = caller_facts(identity.customer, today=now.date(), bill_due_days=flows.bill_due_days)
        try:
            target = route(flows, line.number, caller=request.caller, facts=facts, now=now,
                           language=chosen["HOTLINE_LANGUAGE"])
        except UnknownDestination as exc:
            raise AgiRequestError("no_route", str(exc)) from exc
        if target.context != AGENTS_CONTEXT:  # the dialplan only ever goes to hotline-agents
            raise AgiRequestError("no_route", f"destination {target.destination} is not an agent queue")
        return {"HOTLINE_ROUTE": target.extension, **chosen}

    def _line(self, request: AgiRequest, flows: FlowSet | None = None) -> Line:
        """The menus' line for the request (an unknown number: the default line, as for IVR calls)."""
        flows = flows or self.current_flows()
        line, known = flows.line_for(request.line)
        return line if known else Line(request.line, line.flow, line.name, line.language, line.agent)

    @staticmethod
    def _segment_and_language(identity: Identification, line: Line) -> dict[str, str]:
        customer = identity.customer
        if customer is None:
            return {"HOTLINE_SEGMENT": UNKNOWN_SEGMENT, "HOTLINE_LANGUAGE": line.language}
        return {"HOTLINE_SEGMENT": customer.segment, "HOTLINE_LANGUAGE": customer.language}

    async def _calendar(self, line: str) -> Calendar:
        return Calendar() if self.facts.calendar is None else await self.facts.calendar(line)

    async def _emergency(self, line: str, at: datetime) -> Emergency | None:
        return None if self.facts.emergency is None else await self.facts.emergency(line, at)
