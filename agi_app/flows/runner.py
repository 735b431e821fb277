"""Walks a flow's nodes for one call, using only the call session's primitives.

Each node type is one small coroutine returning the reference of the next node, or None when the
call has left the flow. The same code serves live calls, `hotline simulate` and previews.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from agi_app.engine.session import CallSession
from agi_app.flows.context import CallContext, matches
from agi_app.flows.model import FlowSet, Node
from agi_app.flows.prompts import MediaItem, PromptError, Sound, render
from agi_app.flows.refs import RETURN, resolve
from agi_app.flows.services import ServiceCall, ServiceOutcome, ServiceRegistry
from agi_app.media.resolver import MediaResolver
from agi_app.secure import SecretDigits

MAX_STEPS = 500
KEY_SOUNDS = {"*": "keys/star", "#": "keys/hash"}


class FlowError(Exception):
    """The flow cannot continue (e.g. a step limit reached: a loop with no exit)."""


class FlowListener(Protocol):
    """Observes menus as they are offered (previews and the terminal simulator)."""

    async def menu_offered(self, node: Node, media: list[str], options: list[tuple[str, str]]) -> None: ...


def key_sound(key: str) -> str:
    return KEY_SOUNDS.get(key, f"digits/{key}")


def announce_option(key: str, said: list[MediaItem], language: str) -> list[MediaItem]:
    """How a composed menu announces one option: its `say` prompt, then its key (nothing if silent)."""
    return [*said, Sound(key_sound(key), language)] if said else []


class FlowRunner:
    def __init__(self, call: CallSession, flows: FlowSet, ctx: CallContext, media: MediaResolver,
                 services: ServiceRegistry | None = None, listener: FlowListener | None = None) -> None:
        self.call = call
        self.flows = flows
        self.ctx = ctx
        self.media = media
        self.services = services or ServiceRegistry()
        self.listener = listener
        self.menus: list[tuple[str, str]] = []  # menu stack for the "back" key
        self.returns: list[tuple[str, str]] = []  # (flow, next ref) of `sub` nodes being run

    @property
    def language(self) -> str:
        return self.ctx.language

    async def run(self) -> None:
        line = self.ctx.line
        current: tuple[str, str] | None = (line.flow, self.flows.flows[line.flow].start)
        for _ in range(MAX_STEPS):
            if current is None:
                return
            flow_name, node_id = current
            node = self.flows.flows[flow_name].nodes[node_id]
            self.call.journey.node(node_id)
            self.call.log("node", flow=flow_name, node=node_id, type=node.type)
            ref = await _HANDLERS[node.type](self, flow_name, node)
            current = self.follow(flow_name, ref) if ref else None
        raise FlowError(f"more than {MAX_STEPS} steps: a loop with no exit")

    def follow(self, flow_name: str, ref: str) -> tuple[str, str] | None:
        if ref.startswith("@"):  # internal: a menu stack target already resolved
            flow, _, node = ref[1:].partition(":")
            return flow, node
        if ref == RETURN:
            if not self.returns:
                return None
            caller_flow, next_ref = self.returns.pop()
            return self.follow(caller_flow, next_ref)
        target = resolve(self.flows, flow_name, ref)
        if target is None:
            raise FlowError(f"{flow_name}: reference {ref!r} points nowhere")
        return target

    # --- media --------------------------------------------------------------------------
    def items(self, node: Node, prompt: Mapping[str, str] | None, label: str = "prompt") -> list[MediaItem] | None:
        """Rendered media items; None if the template failed (logged; the caller gets a safe prompt)."""
        if prompt is None:
            return []
        try:
            return render(prompt, self.language, {**self.ctx.template_context()})
        except PromptError as exc:
            self.call.log("prompt_error", level=logging.ERROR, node=node.id, field=label, error=str(exc),
                          caller_gets="technical_difficulty")
            return None

    async def uris(self, items: list[MediaItem]) -> list[str]:
        return await self.media.uris(items, call_id=self.call.call_id)

    async def media_for(self, node: Node, prompt: Mapping[str, str] | None, label: str = "prompt") -> list[str] | None:
        items = self.items(node, prompt, label)
        return None if items is None else await self.uris(items)

    async def sound(self, sound_id: str) -> list[str]:
        return await self.uris([Sound(sound_id, self.language)])

    async def transfer_to(self, destination_name: str, prompt: list[str]) -> None:
        destination = self.flows.destinations[destination_name]
        await self.call.play(prompt, interruptible=False)
        await self.call.transfer(destination.context, destination.extension, destination_name)


# --- node types ---------------------------------------------------------------------------
async def _announcement(run: FlowRunner, flow: str, node: Node) -> str | None:
    media = await run.media_for(node, node.prompt)
    await run.call.play(media if media is not None else await run.sound("technical_difficulty"),
                        interruptible=node.get("interruptible", True))
    if node.get("service"):
        run.call.journey.service(node.get("service"), "ok")
    return node.next


def menu_items(run: FlowRunner, node: Node) -> list[MediaItem] | None:
    """A menu's prompt: a whole `prompt`, or `intro` + each option's `say` followed by its key."""
    if node.prompt is not None:
        return run.items(node, node.prompt)
    items = run.items(node, node.get("intro"), "intro")
    if items is None:
        return None
    for key, option in node.get("options").items():
        said = run.items(node, option.get("say"), f"option {key} say")
        if said is None:
            return None
        items += announce_option(key, said, run.language)
    return items


async def _menu(run: FlowRunner, flow: str, node: Node) -> str | None:
    call, keys = run.call, run.flows.keys
    items = menu_items(run, node)
    if items is None:  # a menu the caller cannot hear is a menu they cannot use: go to an agent
        await run.transfer_to(run.ctx.line.agent, await run.sound("technical_difficulty"))
        return None
    prompt = await run.uris(items)
    invalid_prompt = await run.media_for(node, node.get("invalid_prompt"), "invalid_prompt") or []
    timeout_prompt = await run.media_for(node, node.get("timeout_prompt"), "timeout_prompt") or []
    options: dict[str, Any] = node.get("options")
    universal = node.get("universal_keys", True)
    here = (flow, node.id)
    if not run.menus or run.menus[-1] != here:
        run.menus.append(here)
    if run.listener:
        await run.listener.menu_offered(node, prompt, [(k, o.get("label") or o["next"]) for k, o in options.items()])
    invalid = timeouts = 0
    media = prompt
    while True:
        entry = await call.get_digits(prompt=media, max_digits=1, first_timeout=node.get("timeout", 5.0),
                                      inter_timeout=node.get("inter_digit_timeout", 3.0))
        key = entry.digits
        if not key:
            timeouts += 1
            _input(run, node, "", "timeout")
            if timeouts >= node.get("max_timeout", 3):
                return node.get("on_timeout_exceeded")
            media = timeout_prompt + prompt
            continue
        if key in options:
            _input(run, node, key, "option")
            return options[key]["next"]
        if universal and key == keys.agent:
            _input(run, node, key, "agent")
            await run.transfer_to(run.ctx.line.agent, await run.sound("transfer_agent"))
            return None
        if universal and key == keys.repeat:
            _input(run, node, key, "repeat")
            media = prompt
            continue
        if universal and key == keys.back and len(run.menus) > 1:
            _input(run, node, key, "back")
            run.menus.pop()
            previous_flow, previous_node = run.menus[-1]
            return f"@{previous_flow}:{previous_node}"
        invalid += 1
        _input(run, node, key, "invalid")
        if invalid >= node.get("max_invalid", 3):
            return node.get("on_invalid_exceeded")
        media = invalid_prompt + prompt


def _input(run: FlowRunner, node: Node, value: str | SecretDigits, result: str) -> None:
    """Record and log an input: both show what the journey decides may be shown (`shown_input`)."""
    shown = run.call.journey.input(value, result)
    run.call.log("input", node=node.id, input=shown or None, result=result)


async def _collect(run: FlowRunner, flow: str, node: Node) -> str | None:
    """Multi-digit input; with `secure`, kept as SecretDigits (masked in logs and journeys), and what
    the caller types beyond it is discarded until they pause, however the entry ended."""
    secure = bool(node.get("secure", False))
    next_ref = await _collect_entry(run, node, secure=secure)
    if secure:  # entry complete, too short, or given up: the call goes on (a hangup ends it above)
        await run.call.discard_after_secure_input()
    return next_ref


async def _collect_entry(run: FlowRunner, node: Node, *, secure: bool) -> str | None:
    prompt = await run.media_for(node, node.prompt) or []
    invalid_prompt = await run.media_for(node, node.get("invalid_prompt"), "invalid_prompt") or []
    timeout_prompt = await run.media_for(node, node.get("timeout_prompt"), "timeout_prompt") or []
    min_len, max_len = node.get("min_length", 1), node.get("max_length")
    terminator = node.get("terminator", "#")
    media = prompt
    for _ in range(node.get("max_attempts", 3)):
        entry = await run.call.get_digits(prompt=media, max_digits=max_len, terminator=terminator,
                                          first_timeout=node.get("timeout", 6.0),
                                          inter_timeout=node.get("inter_digit_timeout", 4.0))
        value = SecretDigits(entry.digits) if secure else entry.digits
        if entry.timed_out:
            _input(run, node, "", "timeout")
            media = timeout_prompt + prompt
            continue
        if len(entry.digits) < min_len:
            _input(run, node, value, "invalid")
            media = invalid_prompt + prompt
            continue
        _input(run, node, value, "ok")
        run.ctx.variables[node.get("variable")] = value
        return node.next
    return node.get("on_failure")


async def _process(run: FlowRunner, flow: str, node: Node) -> str | None:
    name = node.get("service")
    service = run.services.get(name)
    request = ServiceCall(name, run.call.call_id, run.ctx.caller, run.ctx.line.number, run.language,
                          run.ctx.customer, dict(run.ctx.variables), node.get("params") or {})
    outcome = ServiceOutcome("failed")
    if service is None:
        run.call.log("service_missing", level=logging.ERROR, node=node.id, service=name)
    else:
        try:
            outcome = await asyncio.wait_for(service(request), (node.get("params") or {}).get("timeout", 5.0))
        except Exception as exc:  # noqa: BLE001 - a failing service is a "failed" result, not a dropped call
            run.call.log("service_error", level=logging.ERROR, node=node.id, service=name, error=type(exc).__name__)
    result = outcome.result
    run.ctx.variables.update(outcome.variables)
    run.call.journey.service(name, result)
    run.call.log("service", node=node.id, service=name, result=result)
    await run.call.play(await run.uris(outcome.say))
    after = await run.media_for(node, node.prompt)
    await run.call.play(after or [])
    if result == "refused":
        return node.get("on_refused") or node.next
    if result == "failed":
        return node.get("on_failed") or node.next
    return node.next


async def _condition(run: FlowRunner, flow: str, node: Node) -> str | None:
    for index, branch in enumerate(node.get("branches"), start=1):
        if matches(branch["if"], run.ctx):
            run.call.log("branch", node=node.id, taken=index)
            return branch["next"]
    run.call.log("branch", node=node.id, taken="else")
    return node.get("else")


async def _transfer(run: FlowRunner, flow: str, node: Node) -> str | None:
    media = await run.media_for(node, node.prompt)
    if node.get("service"):
        run.call.journey.service(node.get("service"), "ok")
    await run.transfer_to(node.get("destination") or run.ctx.line.agent, media or [])
    return None


async def _hangup(run: FlowRunner, flow: str, node: Node) -> str | None:
    media = await run.media_for(node, node.prompt)
    await run.call.play(media or [], interruptible=False)
    await run.call.hangup()
    return None


async def _jump(run: FlowRunner, flow: str, node: Node) -> str | None:
    return node.next


async def _sub(run: FlowRunner, flow: str, node: Node) -> str | None:
    run.returns.append((flow, node.next or RETURN))
    return f"{node.get('flow')}:"


async def _return(run: FlowRunner, flow: str, node: Node) -> str | None:
    return RETURN


async def _survey(run: FlowRunner, flow: str, node: Node) -> str | None:
    prompt = await run.media_for(node, node.prompt) or []
    entry = await run.call.get_digits(prompt=prompt, max_digits=1, first_timeout=node.get("timeout", 6.0))
    if entry.digits in ("1", "2", "3", "4", "5"):
        _input(run, node, entry.digits, "score")
        run.call.journey.survey(node.id, int(entry.digits))
        await run.call.play(await run.media_for(node, node.get("thanks_prompt")) or [], interruptible=False)
    else:
        _input(run, node, entry.digits, "no_answer")
    return node.next


_HANDLERS: dict[str, Callable[[FlowRunner, str, Node], Awaitable[str | None]]] = {
    "menu": _menu,
    "announcement": _announcement,
    "collect": _collect,
    "process": _process,
    "condition": _condition,
    "transfer": _transfer,
    "hangup": _hangup,
    "jump": _jump,
    "sub": _sub,
    "return": _return,
    "survey": _survey,
}
