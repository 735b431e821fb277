"""`hotline menus cost`: time to service per caller or per persona (segment/flag variant), from
the real durations of the rendered prompts, evaluated by the same call preparation live calls use."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

from agi_app.caller_facts import CallerFacts
from agi_app.directory.facts import caller_facts
from agi_app.directory.models import Customer
from agi_app.engine.call import HotlineFlow, emergency_items
from agi_app.flows.context import FlowContext
from agi_app.flows.cost import CostWalker, ServiceCost
from agi_app.flows.model import FlowSet
from agi_app.media.durations import MediaDurations

GENERIC = "generic"


def persona(name: str, language: str, now: datetime) -> Customer | None:
    """A representative caller of each variant; `generic` is the unknown caller."""
    if name == GENERIC:
        return None
    if name == "bill_due":
        return Customer("persona-bill_due", "Demo", "Mr", "standard", language, (), now.date() + timedelta(days=3))
    return Customer(f"persona-{name}", "Demo", "Mr", name, language)


def persona_facts(name: str, language: str, now: datetime, flows: FlowSet) -> CallerFacts:
    """What the flows see of a persona: the facts live calls get for such a customer."""
    return caller_facts(persona(name, language, now), today=now.date(), bill_due_days=flows.bill_due_days)


PERSONAS = (GENERIC, "standard", "bill_due", "vip", "private", "elderly")


async def _walk(handler: HotlineFlow, ctx: FlowContext, flows: FlowSet, sounds_dir: Path) -> list[ServiceCost]:
    durations = MediaDurations(sounds_dir, handler.media.speech)
    lead_in = await durations(emergency_items(ctx))
    return await CostWalker(flows, ctx, durations, lead_in=lead_in).walk()


async def cost_for_caller(handler: HotlineFlow, *, caller: str, line: str, at: datetime,
                          sounds_dir: Path) -> list[ServiceCost]:
    flows, ctx = await handler.prepare(caller=caller, dnis=line, call_id="cost", at=at)
    return await _walk(handler, ctx, flows, sounds_dir)


async def cost_for_persona(handler: HotlineFlow, *, name: str, line: str, at: datetime,
                           sounds_dir: Path) -> list[ServiceCost]:
    flows, ctx = await handler.prepare(caller="", dnis=line, call_id="cost", at=at)
    facts = persona_facts(name, ctx.line.language, ctx.now, flows)
    ctx = dataclasses.replace(ctx, facts=facts, caller=f"persona-{name}", language=facts.text("language") or ctx.language)
    return await _walk(handler, ctx, flows, sounds_dir)
