"""A menu designer's rehearsal without a database: the live call handler (`HotlineFlow`) over a
flow file, where the caller is a persona instead of a directory lookup, the calendar is open
(`Calendar()`: no rules, so `--at` only moves the clock and the persona's dates), and there is no
emergency and no notice. `menus preview|cost` and `simulate` use it for `--file` without `--caller`;
only a real caller's lookup and published versions need PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from agi_app.admin.cost import GENERIC, persona
from agi_app.directory.models import Customer
from agi_app.directory.service import Directory, Identification
from agi_app.engine.call import HotlineFlow
from agi_app.engine.start_facts import StartFactsLoader
from agi_app.flows.loader import load_file
from agi_app.flows.model import FlowSet
from agi_app.flows.services import ServiceRegistry
from agi_app.media.resolver import MediaResolver

#: What a persona's call shows as its calling number (never looked up).
PERSONA_CALLER = "persona"


class PersonaDirectory(Directory):
    """Every caller is the persona: `None` for `generic`, the unknown caller."""

    def __init__(self, customer: Customer | None) -> None:
        super().__init__(self._never)
        self.customer = customer

    @staticmethod
    async def _never(phone: str) -> Customer | None:
        raise AssertionError("a persona is never looked up")

    async def identify(self, caller: str, *, call_id: str = "") -> Identification:
        return Identification(self.customer, None)


def persona_handler(flows: FlowSet, *, segment: str, line: str, at: datetime, media: MediaResolver,
                    services: ServiceRegistry, budget_s: float,
                    clock: Callable[[], datetime] | None = None) -> HotlineFlow:
    """The live handler for persona `segment` calling `line` of `flows`, with no database."""
    language = flows.line_for(line)[0].language
    customer = persona(segment, language, at) if segment != GENERIC else None
    loader = StartFactsLoader(PersonaDirectory(customer), budget_s=budget_s, clock=clock)
    return HotlineFlow(loader, lambda: flows, media, services)


def load_design(flows_file: Path, services: ServiceRegistry) -> FlowSet:
    """The flow file as `hotline serve --flows-file` would load it (FlowFileError if invalid)."""
    return load_file(flows_file, services=services.names())[0]
