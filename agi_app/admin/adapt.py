"""`hotline menus adapt`: propose a new menu version ordering a segment's options by measured use,
with its diff and predicted time-to-service change, and publish it only when the administrator
confirms — as any other version (validated, audited, servers notified; `menus rollback` undoes it).

The ordering rules and why key digits never change: agi_app/flows/adapt.py.
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from agi_app.admin import Refused
from agi_app.admin.cost import PERSONAS, persona, persona_facts
from agi_app.admin.menus import Published, as_yaml, publish, unified_diff, validate
from agi_app.analytics.kpi import UNKNOWN_SEGMENT
from agi_app.calendar.info import CalendarInfo
from agi_app.db.repositories import menus
from agi_app.db.repositories.menu_choices import menu_choices
from agi_app.flows.adapt import MenuRef, Proposal, menus_reached, propose
from agi_app.flows.context import FlowContext
from agi_app.flows.cost import CostWalker, ServiceCost
from agi_app.flows.model import FlowSet, Line
from agi_app.media.durations import MediaDurations

#: Every calendar state a caller may meet: a segment's variants include its closed-hours menus.
CALENDAR_STATES = ("open", "closed", "holiday")


@dataclass(frozen=True)
class CostChange:
    """One service's time to service for one persona on one line, before and after (open hours)."""

    persona: str
    line: str
    service: str
    before: ServiceCost | None
    after: ServiceCost | None


@dataclass(frozen=True)
class AdaptPlan:
    segment: str
    line: str | None
    days: int
    base_version: int  # the active version the proposal changes
    proposal: Proposal
    diff: str
    heard_by: Mapping[MenuRef, tuple[str, ...]]  # changed menus other personas hear too
    costs: tuple[CostChange, ...]  # services whose time to service changes


def personas_of(segment: str) -> list[str]:
    """The `menus cost` personas whose callers belong to `segment` (standard: also bill_due)."""
    def segment_of(name: str) -> str:
        customer = persona(name, "zh", datetime.now(UTC))  # language and date do not change the segment
        return customer.segment if customer else UNKNOWN_SEGMENT
    return [name for name in PERSONAS if segment_of(name) == segment]


def _context(flows: FlowSet, name: str, line: Line, now: datetime, status: str) -> FlowContext:
    facts = persona_facts(name, line.language, now, flows)
    return FlowContext(caller=f"persona-{name}", line=line, language=facts.text("language") or line.language,
                       now=now, facts=facts, calendar=CalendarInfo(status))


async def _reached(flows: FlowSet, names: Collection[str], lines: Collection[Line], now: datetime) -> set[MenuRef]:
    found: set[MenuRef] = set()
    for name in names:
        for line in lines:
            for status in CALENDAR_STATES:
                found |= await menus_reached(flows, _context(flows, name, line, now, status))
    return found


async def _cost_changes(before: FlowSet, after: FlowSet, names: Collection[str], lines: Collection[Line],
                        now: datetime, sounds_dir: Path) -> list[CostChange]:
    durations = MediaDurations(sounds_dir, None)

    async def costs(flows: FlowSet, name: str, line: Line) -> dict[str, ServiceCost]:
        walker = CostWalker(flows, _context(flows, name, line, now, "open"), durations)
        return {c.service: c for c in await walker.walk()}

    def shown(cost: ServiceCost | None) -> tuple[float, str] | None:
        return None if cost is None else (round(cost.seconds, 1), cost.keys)

    changes = []
    for name in names:
        for line in lines:
            old, new = await costs(before, name, line), await costs(after, name, line)
            changes += [CostChange(name, line.number, service, old.get(service), new.get(service))
                        for service in sorted(set(old) | set(new))
                        if shown(old.get(service)) != shown(new.get(service))]
    return changes


async def plan(conn: asyncpg.Connection, *, segment: str, line: str | None, days: int, min_sample: int,
               sounds_dir: Path, services: Collection[str] | None, now: datetime) -> AdaptPlan:
    """The proposal for the active version; nothing is written."""
    active = await menus.get_active(conn)
    if active is None:
        raise Refused("no menu version is published")
    flows, _ = validate(active.document, file=f"version {active.version}", sounds_dir=sounds_dir,
                        services=services, version=active.version)
    if line is not None and line not in flows.lines:
        raise Refused(f"line {line} is not in version {active.version} (lines: {', '.join(flows.lines)})")
    lines = [flows.lines[line]] if line else list(flows.lines.values())
    names = personas_of(segment)
    choices = await menu_choices(conn, now - timedelta(days=days), segment, line=line)
    proposal = propose(active.document, flows, await _reached(flows, names, lines, now), choices,
                       min_sample=min_sample)
    if not proposal.changed:
        return AdaptPlan(segment, line, days, active.version, proposal, "", {}, ())
    after, _ = validate(proposal.document, file="proposal", sounds_dir=sounds_dir, services=services)
    changed = {(m.flow, m.node) for m in proposal.moves}
    heard_by: dict[MenuRef, tuple[str, ...]] = {}
    for other in (n for n in PERSONAS if n not in names):
        for menu in changed & await _reached(flows, [other], lines, now):
            heard_by[menu] = (*heard_by.get(menu, ()), other)
    return AdaptPlan(segment, line, days, active.version, proposal,
                     unified_diff(active.document, proposal.document, f"version {active.version}", "proposal"),
                     heard_by, tuple(await _cost_changes(flows, after, names, lines, now, sounds_dir)))


def comment(adapted: AdaptPlan) -> str:
    """Why this version, kept with it: the segment, the window and each move."""
    scope = f" --line {adapted.line}" if adapted.line else ""
    moves = "; ".join(f"{m.flow}/{m.node} key {m.key} up to place {m.place_after}" for m in adapted.proposal.moves)
    return f"menus adapt --segment {adapted.segment}{scope} --days {adapted.days}: {moves}"


async def publish_plan(conn: asyncpg.Connection, adapted: AdaptPlan, *, actor: str, sounds_dir: Path,
                       services: Collection[str] | None) -> Published:
    """Publish the proposal through normal versioning — unless another version became active since
    it was measured (the proposal would undo that change)."""
    if not adapted.proposal.changed:
        raise Refused("nothing to publish")
    current = await menus.active_version(conn)
    if current != adapted.base_version:
        raise Refused(f"version {current} became active after the proposal was made from version "
                      f"{adapted.base_version}: run menus adapt again")
    with tempfile.TemporaryDirectory(prefix="hotline-adapt-") as folder:
        path = Path(folder) / f"adapt-{adapted.segment}.yaml"
        path.write_text("".join(as_yaml(adapted.proposal.document)), encoding="utf-8")
        return await publish(conn, path, actor=actor, sounds_dir=sounds_dir, comment=comment(adapted),
                             services=services)
