"""Time to service: for one caller's variant of the menus, how many keys, how many seconds of
prompt audio and how many menus stand between answering the call and each service.

A classic static bank IVR makes callers sit through minutes of prompts; this is how we measure
that personalised variants get each segment to its top service faster. The walk evaluates
conditions for the given caller (segment, flags, line, calendar), follows menus option by option
and keeps, per service, the quickest way there. Seconds count the audio a caller hears before the
key has been announced: a composed menu (`intro` + options) announces each key in order; a
whole-prompt menu counts in full (the key's position inside a recording is unknown).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import assert_never

from agi_app.flows.context import FlowContext, matches
from agi_app.flows.model import (
    RETURN,
    AnnouncementNode,
    CollectNode,
    ConditionNode,
    FlowSet,
    HangupNode,
    JumpNode,
    MenuNode,
    ProcessNode,
    Prompt,
    RecordNode,
    ReturnNode,
    SubNode,
    SurveyNode,
    TransferNode,
)
from agi_app.flows.prompts import PromptError, render
from agi_app.flows.runner import announce_option
from agi_app.media.items import MediaItem

Durations = Callable[[Sequence[MediaItem]], Awaitable[float]]


@dataclass(frozen=True)
class ServiceCost:
    service: str
    keys: str
    seconds: float
    depth: int
    node: str  # flow/node where the service is reached

    def as_json(self) -> dict[str, object]:
        return {"service": self.service, "keys": self.keys, "seconds": round(self.seconds, 1),
                "depth": self.depth, "node": self.node}


@dataclass(frozen=True)
class _State:
    seconds: float
    keys: str
    depth: int
    flow: str
    node: str
    returns: tuple[tuple[str, str], ...]


class CostWalker:
    def __init__(self, flows: FlowSet, ctx: FlowContext, durations: Durations, *, lead_in: float = 0.0) -> None:
        self.flows = flows
        self.ctx = ctx
        self.durations = durations
        self.lead_in = lead_in  # audio before the flow starts (an emergency notice)

    async def walk(self) -> list[ServiceCost]:
        best: dict[str, ServiceCost] = {}
        start = self.flows.flows[self.ctx.line.flow]
        counter = itertools.count()
        queue: list[tuple[float, int, _State]] = []
        heapq.heappush(queue, (self.lead_in, next(counter), _State(self.lead_in, "", 0, start.name, start.start, ())))
        settled: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
        while queue:
            _, _, state = heapq.heappop(queue)
            key = (state.flow, state.node, state.returns)
            if key in settled:
                continue
            settled.add(key)
            for found in await self._step(state):
                if isinstance(found, ServiceCost):
                    current = best.get(found.service)
                    if current is None or (found.seconds, len(found.keys)) < (current.seconds, len(current.keys)):
                        best[found.service] = found
                else:
                    heapq.heappush(queue, (found.seconds, next(counter), found))
        return sorted(best.values(), key=lambda c: (c.seconds, c.service))

    def _items(self, prompt: Prompt | None) -> list[MediaItem]:
        if prompt is None:
            return []
        try:
            return render(prompt, self.ctx.language, self.ctx.template_context())
        except PromptError:
            return []

    async def _seconds(self, prompt: Prompt | None) -> float:
        return await self.durations(self._items(prompt))

    def _next(self, state: _State, ref: str | None, *, seconds: float = 0.0, keys: str = "",
              menu: bool = False) -> list[_State]:
        if not ref:
            return []
        returns = state.returns
        if ref == RETURN:
            if not returns:
                return []
            (flow, ref), returns = returns[-1], returns[:-1]
            return self._next(_State(state.seconds, state.keys, state.depth, flow, state.node, returns), ref,
                              seconds=seconds, keys=keys, menu=menu)
        target = self.flows.resolve(state.flow, ref)
        if target is None:
            return []
        return [_State(state.seconds + seconds, state.keys + keys, state.depth + (1 if menu else 0),
                       target[0], target[1], returns)]

    async def _step(self, state: _State) -> list[_State | ServiceCost]:
        node = self.flows.flows[state.flow].nodes[state.node]
        where = f"{state.flow}/{node.id}"

        def reached(service: str, seconds: float, keys: str = "", depth: int = 0) -> ServiceCost:
            return ServiceCost(service, state.keys + keys, state.seconds + seconds, state.depth + depth, where)

        out: list[_State | ServiceCost] = []
        match node:
            case AnnouncementNode() | CollectNode() | SurveyNode() | RecordNode():
                spent = await self._seconds(node.prompt)
                if isinstance(node, AnnouncementNode) and node.service:
                    out.append(reached(node.service, spent))
                out.extend(self._next(state, node.next, seconds=spent))
            case ProcessNode():
                out.append(reached(node.service, 0.0))
                out.extend(self._next(state, node.next))
            case TransferNode():
                if node.service:
                    out.append(reached(node.service, await self._seconds(node.prompt)))
            case ConditionNode():
                branch = next((b.next for b in node.branches if matches(b.when, self.ctx)), node.otherwise)
                out.extend(self._next(state, branch))
            case JumpNode():
                out.extend(self._next(state, node.next))
            case SubNode():
                pushed = _State(state.seconds, state.keys, state.depth, state.flow, state.node,
                                (*state.returns, (state.flow, node.next)))
                out.extend(self._next(pushed, f"{node.flow}:"))
            case ReturnNode():
                out.extend(self._next(state, RETURN))
            case MenuNode():
                out.extend(await self._menu(state, node, reached))
            case HangupNode():
                pass
            case _:
                assert_never(node)
        return out

    async def _menu(self, state: _State, node: MenuNode,
                    reached: Callable[..., ServiceCost]) -> list[_State | ServiceCost]:
        out: list[_State | ServiceCost] = []
        composed = node.prompt is None
        elapsed = await self._seconds(node.intro if composed else node.prompt)
        announced: dict[str, float] = {}
        if composed:
            for key, option in node.options.items():
                said = self._items(option.say)
                elapsed += await self.durations(announce_option(key, said, self.ctx.language))
                announced[key] = elapsed
        full = elapsed
        for key, option in node.options.items():
            at = announced.get(key, full)
            if option.service:
                out.append(reached(option.service, at, key, 1))
            out.extend(self._next(state, option.next, seconds=at, keys=key, menu=True))
        agent = self.flows.keys.agent
        if node.universal_keys and agent and agent not in node.options:
            out.append(reached("agent", full, agent, 1))
        return out
