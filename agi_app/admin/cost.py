"""`hotline menus cost`: time to service per caller or per persona (segment/flag variant), from
the real durations of the rendered prompts, evaluated by the same call preparation live calls use."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

from agi_app.directory.models import Customer
from agi_app.engine.call import HotlineCall, emergency_items
from agi_app.flows.context import CallContext
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


PERSONAS = (GENERIC, "standard", "bill_due", "vip", "private", "elderly")


async def _walk(handler: HotlineCall, ctx: CallContext, flows: FlowSet, sounds_dir: Path) -> list[ServiceCost]:
    durations = MediaDurations(sounds_dir, handler.media.speech)
    lead_in = await durations(emergency_items(ctx))
    return await CostWalker(flows, ctx, durations, lead_in=lead_in).walk()


async def cost_for_caller(handler: HotlineCall, *, caller: str, line: str, at: datetime,
                          sounds_dir: Path) -> list[ServiceCost]:
    flows, ctx = await handler.prepare(caller=caller, dnis=line, call_id="cost", at=at)
    return await _walk(handler, ctx, flows, sounds_dir)


async def cost_for_persona(handler: HotlineCall, *, name: str, line: str, at: datetime,
                           sounds_dir: Path) -> list[ServiceCost]:
    flows, ctx = await handler.prepare(caller="", dnis=line, call_id="cost", at=at)
    customer = persona(name, ctx.line.language, ctx.now)
    ctx = dataclasses.replace(ctx, customer=customer, caller=f"persona-{name}",
                              language=customer.language if customer else ctx.language)
    return await _walk(handler, ctx, flows, sounds_dir)
