"""Walks a flow's nodes for one call, using only the call session's primitives.

Each node type is one small coroutine (`_menu`, `_announcement`, ...) returning the reference of
the next node, or None when the call has left the flow. The same code serves live calls, the
terminal simulator and previews.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agi_app.engine.session import CallSession
from agi_app.flows.model import FlowSet, Line, Node
from agi_app.flows.prompts import PromptError, Sound, render
from agi_app.flows.refs import resolve
from agi_app.media.resolver import MediaResolver

MAX_STEPS = 500


class FlowError(Exception):
    """The flow cannot continue (e.g. a step limit reached: a loop with no exit)."""


class FlowRunner:
    def __init__(self, call: CallSession, flows: FlowSet, line: Line, language: str,
                 context: Mapping[str, Any], media: MediaResolver) -> None:
        self.call = call
        self.flows = flows
        self.line = line
        self.language = language
        self.context = dict(context)
        self.media = media
        self._menus: list[tuple[str, str]] = []  # menu stack for the "back" key

    async def run(self) -> None:
        current: tuple[str, str] | None = (self.line.flow, self.flows.flows[self.line.flow].start)
        for _ in range(MAX_STEPS):
            if current is None:
                return
            flow_name, node_id = current
            node = self.flows.flows[flow_name].nodes[node_id]
            self.call.journey.node(node_id)
            self.call.log("node", flow=flow_name, node=node_id, type=node.type)
            ref = await _HANDLERS[node.type](self, flow_name, node)
            current = self._follow(flow_name, ref) if ref else None
        raise FlowError(f"more than {MAX_STEPS} steps: a loop with no exit")

    def _follow(self, flow_name: str, ref: str) -> tuple[str, str]:
        if ref.startswith("@"):  # internal: a menu stack target already resolved
            flow, _, node = ref[1:].partition(":")
            return flow, node
        target = resolve(self.flows, flow_name, ref)
        if target is None:
            raise FlowError(f"{flow_name}: reference {ref!r} points nowhere")
        return target

    async def media_for(self, node: Node, prompt: Mapping[str, str] | None, label: str = "prompt") -> list[str] | None:
        """Rendered media for a prompt; None if the template failed (logged; caller hears a safe prompt)."""
        if prompt is None:
            return []
        try:
            items = render(prompt, self.language, self.context)
        except PromptError as exc:
            self.call.log("prompt_error", level=logging.ERROR, node=node.id, field=label, error=str(exc),
                          caller_gets="technical_difficulty")
            return None
        return await self.media.uris(items, call_id=self.call.call_id)

    async def safe_prompt(self) -> list[str]:
        return await self.media.uris([Sound("technical_difficulty", self.language)])

    async def transfer_to(self, destination_name: str, prompt: list[str]) -> None:
        destination = self.flows.destinations[destination_name]
        await self.call.play(prompt, interruptible=False)
        await self.call.transfer(destination.context, destination.extension, destination_name)


async def _announcement(run: FlowRunner, flow: str, node: Node) -> str | None:
    media = await run.media_for(node, node.prompt)
    await run.call.play(media if media is not None else await run.safe_prompt(),
                        interruptible=node.get("interruptible", True))
    if node.get("service"):
        run.call.journey.service(node.get("service"), "ok")
    return node.next


async def _menu(run: FlowRunner, flow: str, node: Node) -> str | None:
    call, keys = run.call, run.flows.keys
    prompt = await run.media_for(node, node.prompt)
    if prompt is None:  # a menu the caller cannot hear is a menu they cannot use: go to an agent
        await run.transfer_to(run.line.agent, await run.safe_prompt())
        return None
    invalid_prompt = await run.media_for(node, node.get("invalid_prompt"), "invalid_prompt") or []
    timeout_prompt = await run.media_for(node, node.get("timeout_prompt"), "timeout_prompt") or []
    options: dict[str, Any] = node.get("options")
    here = (flow, node.id)
    if not run._menus or run._menus[-1] != here:
        run._menus.append(here)
    invalid = timeouts = 0
    media = prompt
    while True:
        entry = await call.get_digits(prompt=media, max_digits=1, first_timeout=node.get("timeout", 5.0),
                                      inter_timeout=node.get("inter_digit_timeout", 3.0))
        key = entry.digits
        if not key:
            timeouts += 1
            call.journey.input("", "timeout")
            if timeouts >= node.get("max_timeout", 3):
                return node.get("on_timeout_exceeded")
            media = timeout_prompt + prompt
            continue
        if key in options:
            call.journey.input(key, "option")
            if options[key].get("service"):
                call.journey.service(options[key]["service"], "ok")
            return options[key]["next"]
        if key == keys.agent:
            call.journey.input(key, "agent")
            await run.transfer_to(run.line.agent, await _media(run, node, "transfer_agent"))
            return None
        if key == keys.repeat:
            call.journey.input(key, "repeat")
            media = prompt
            continue
        if key == keys.back and len(run._menus) > 1:
            call.journey.input(key, "back")
            run._menus.pop()
            previous_flow, previous_node = run._menus[-1]
            return f"@{previous_flow}:{previous_node}"
        invalid += 1
        call.journey.input(key, "invalid")
        if invalid >= node.get("max_invalid", 3):
            return node.get("on_invalid_exceeded")
        media = invalid_prompt + prompt


async def _media(run: FlowRunner, node: Node, sound_id: str) -> list[str]:
    return await run.media.uris([Sound(sound_id, run.language)], call_id=run.call.call_id)


async def _transfer(run: FlowRunner, flow: str, node: Node) -> str | None:
    media = await run.media_for(node, node.prompt)
    await run.transfer_to(node.get("destination") or run.line.agent, media or [])
    return None


async def _hangup(run: FlowRunner, flow: str, node: Node) -> str | None:
    media = await run.media_for(node, node.prompt)
    await run.call.play(media or [], interruptible=False)
    await run.call.hangup()
    return None


async def _jump(run: FlowRunner, flow: str, node: Node) -> str | None:
    return node.next


_HANDLERS: dict[str, Callable[[FlowRunner, str, Node], Awaitable[str | None]]] = {
    "menu": _menu,
    "announcement": _announcement,
    "transfer": _transfer,
    "hangup": _hangup,
    "jump": _jump,
}
