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
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any, TypeVar

from agi_app.agi.request import AgiRequest, AgiRequestError
from agi_app.calendar.model import Calendar
from agi_app.centre.routing import UnknownDestination, route
from agi_app.directory.facts import caller_facts
from agi_app.directory.phone import normalize_phone
from agi_app.directory.service import Identification
from agi_app.engine.start_facts import StartFactsLoader
from agi_app.flows.model import AGENTS_CONTEXT, FlowSet, Line
from agi_app.logs import log_event
from agi_app.operations.model import Emergency

log = logging.getLogger("hotline.agi")
T = TypeVar("T")

#: Channel variables a hook sets, by name.
Variables = Mapping[str, str]
Hook = Callable[[AgiRequest], Awaitable[Variables]]

#: The scripts a dialplan may call (agi://host:port/<name>).
HOOK_NAMES = ("identify", "status", "route")

#: How long past the directory's own budget a lookup may take before the hook stops waiting.
LOOKUP_GRACE_S = 0.05

#: Segment of a caller the directory does not know (or could not look up in time).
UNKNOWN_SEGMENT = "standard"


class AgiHooks:
    """identify, status and route over the engine's start facts and the current menus."""

    def __init__(self, facts: StartFactsLoader, current_flows: Callable[[], FlowSet]) -> None:
        self.facts = facts
        self.current_flows = current_flows
        self._late: set[asyncio.Task[Any]] = set()  # sources cut at their budget, still cancelling

    def routes(self) -> dict[str, Hook]:
        """The hooks by script name: agi://host:port/<name>."""
        return {name: getattr(self, name) for name in HOOK_NAMES}

    async def identify(self, request: AgiRequest) -> Variables:
        """HOTLINE_IDENTIFY ok|unknown|degraded, HOTLINE_CUSTOMER_ID, HOTLINE_SEGMENT, HOTLINE_LANGUAGE."""
        line = self._line(request)
        identity = await self._identify(request)
        customer = identity.customer
        result = "ok" if customer else "degraded" if identity.degraded else "unknown"
        return {"HOTLINE_IDENTIFY": result, "HOTLINE_CUSTOMER_ID": customer.customer_id if customer else "",
                **self._segment_and_language(identity, line)}

    async def close(self) -> None:
        """Cancel the sources still finishing after their cut, and wait for them."""
        for task in self._late:
            task.cancel()
        if self._late:
            await asyncio.wait(list(self._late))

    async def status(self, request: AgiRequest) -> Variables:
        """HOTLINE_STATUS emergency|holiday|closed|open: an emergency first, as an IVR call hears it."""
        number = self._line(request).number
        at = self.facts.clock()
        budget = self.facts.budget_s
        calendar, emergency = await asyncio.gather(
            self._cut("calendar", request, self._calendar(number), budget, Calendar()),
            self._cut("emergency", request, self._emergency(number, at), budget, None))
        return {"HOTLINE_STATUS": "emergency" if emergency is not None else calendar.state(at).status}

    async def route(self, request: AgiRequest) -> Variables:
        """HOTLINE_ROUTE: the hotline-agents extension (skill group) for this caller on this line,
        with the HOTLINE_SEGMENT and HOTLINE_LANGUAGE it was chosen for. The caller is looked up
        here rather than read from channel variables: a dialplan variable cannot talk a caller
        into another queue."""
        flows = self.current_flows()
        line = self._line(request, flows)
        identity = await self._identify(request)
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

    async def _identify(self, request: AgiRequest) -> Identification:
        """The directory's lookup, which cuts itself at its budget; cut here too, a moment later,
        because its cut waits for the cancelled query to let go of its connection, and a slow
        database makes that wait as slow as the query (Asterisk holds the caller meanwhile)."""
        directory = self.facts.directory
        degraded = Identification(None, normalize_phone(request.caller), degraded=True)
        return await self._cut("lookup", request, directory.identify(request.caller, call_id=request.call_id),
                               directory.budget_s + LOOKUP_GRACE_S, degraded)

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

    async def _cut(self, what: str, request: AgiRequest, source: Coroutine[Any, Any, T], budget_s: float,
                   fallback: T) -> T:
        """`source` within `budget_s`, else `fallback` at once (the IVR's safe default); a source
        past its budget is cancelled and left to finish in the background, owned here."""
        task = asyncio.ensure_future(source)
        done, _ = await asyncio.wait({task}, timeout=budget_s)
        if task in done and not task.cancelled() and task.exception() is None:
            return task.result()
        if task in done:
            error = "Cancelled" if task.cancelled() else type(task.exception()).__name__
        else:
            error = "TimeoutError"
            task.cancel()
            self._late.add(task)
            task.add_done_callback(self._forget)
        log_event(log, f"{what}_unavailable", level=logging.WARNING, call=request.call_id, error=error,
                  hook=request.script)
        return fallback

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._late.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a late failure was already answered with the default
