"""Where a call for a line goes when a person must take it, for callers our flows do not walk.

The FastAGI `route` hook answers the dialplan with this: the line's agent destination (or a named
one, which must be configured — nothing else is ever dialled), routed for the caller by the same
rule the IVR runner uses (`flows.queueing.queue_for`), so the dialplan and the IVR never disagree
on a skill group.
"""

from __future__ import annotations

from datetime import datetime

from agi_app.caller_facts import CallerFacts
from agi_app.flows.context import FlowContext
from agi_app.flows.model import FlowSet
from agi_app.flows.queueing import DialTarget, dial_target


class UnknownDestination(ValueError):
    """A destination the menus do not configure was asked for."""


def route(flows: FlowSet, dnis: str, *, caller: str, facts: CallerFacts, now: datetime,
          language: str | None = None, destination: str | None = None) -> DialTarget:
    """The dial target for a caller of line `dnis` (an unknown line: the default line's), in
    `language` (else the line's): `destination`, else the line's agent destination."""
    line, _ = flows.line_for(dnis)
    name = destination or line.agent
    if name not in flows.destinations:
        raise UnknownDestination(f"destination {name!r} is not configured")
    ctx = FlowContext(caller=caller, line=line, language=language or line.language, now=now, facts=facts)
    return dial_target(flows.destinations[name], ctx)
