"""Menus that learn: reorder a segment's menu options by how often that segment's callers choose them.

How keys and order relate: an option's *key digit never changes* — callers who know "press 2 for
cards" by heart, printed cards and the agents' scripts keep working; only the *spoken order* of a
composed menu (`intro`, then each option in document order) changes, so the options callers choose
most are announced sooner and callers who wait for theirs hear it earlier. (Renumbering would make
the digits follow the order, at the price of every memorised key; not done.) A whole-prompt menu
(`prompt:`, one recording) is left alone: its recording fixes the order.

Guard rails, each a reason a menu or an option is left as it is:

- the universal keys (agent, back, repeat: 0, *, 9 by default) keep their keys and their places;
- a menu is considered only with at least `min_sample` measured choices of its options;
- an option moves at most one place per proposal, up past its neighbour (the next option that may
  move) only if it was chosen strictly more often; the most used options are placed first, and an
  option that moved (up or down) does not move again in the same proposal;
- only the menus the segment's callers reach (its variants, `menus_reached`) are touched;
- the journeys record node ids without their flow: a node id that names a menu in two flows cannot
  be attributed and is skipped.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agi_app.flows.context import FlowContext
from agi_app.flows.cost import CostWalker, ServiceCost, _State
from agi_app.flows.model import FlowSet, MenuNode
from agi_app.media.durations import no_durations

MenuRef = tuple[str, str]  # (flow, node id)


@dataclass(frozen=True)
class Move:
    """`key` is announced one place earlier; `displaced` one place later (places count from 1)."""

    flow: str
    node: str
    key: str
    label: str
    chosen: int
    displaced: str
    displaced_chosen: int
    place_before: int
    place_after: int


@dataclass(frozen=True)
class Skipped:
    flow: str
    node: str
    reason: str


@dataclass(frozen=True)
class Proposal:
    document: dict[str, Any]  # the new menus document (a copy; equal to the old one without moves)
    moves: tuple[Move, ...]
    skipped: tuple[Skipped, ...]
    samples: Mapping[MenuRef, int]  # measured choices per menu considered

    @property
    def changed(self) -> bool:
        return bool(self.moves)


class _ReachWalker(CostWalker):
    """The cost walk (the same condition evaluation as live calls), remembering every node it settles."""

    def __init__(self, flows: FlowSet, ctx: FlowContext) -> None:
        super().__init__(flows, ctx, no_durations)
        self.seen: set[MenuRef] = set()

    async def _step(self, state: _State) -> list[_State | ServiceCost]:
        self.seen.add((state.flow, state.node))
        return await super()._step(state)


async def menus_reached(flows: FlowSet, ctx: FlowContext) -> set[MenuRef]:
    """The menus a caller with `ctx` can hear (every branch their conditions allow)."""
    walker = _ReachWalker(flows, ctx)
    await walker.walk()
    return {(flow, node) for flow, node in walker.seen if isinstance(flows.flows[flow].nodes[node], MenuNode)}


def universal_keys(flows: FlowSet) -> frozenset[str]:
    return frozenset(k for k in (flows.keys.agent, flows.keys.back, flows.keys.repeat) if k)


def _ambiguous(flows: FlowSet) -> dict[str, list[str]]:
    """Node ids that name a menu in more than one flow: journeys cannot tell which was heard."""
    flows_of: dict[str, list[str]] = {}
    for name, flow in flows.flows.items():
        for node in flow.nodes.values():
            if isinstance(node, MenuNode):
                flows_of.setdefault(node.id, []).append(name)
    return {node: names for node, names in flows_of.items() if len(names) > 1}


def reorder(order: list[str], chosen: Mapping[str, int], fixed: Collection[str]) -> list[tuple[str, str]]:
    """One proposal's moves in `order` (changed in place): (key moved up, key moved down)."""
    movable = [i for i, key in enumerate(order) if key not in fixed]
    moved: set[str] = set()
    swaps = []
    for key in sorted((order[i] for i in movable), key=lambda k: (-chosen.get(k, 0), order.index(k))):
        slot = movable.index(order.index(key))
        if key in moved or slot == 0:
            continue
        above = order[movable[slot - 1]]
        if above in moved or chosen.get(key, 0) <= chosen.get(above, 0):
            continue
        order[movable[slot - 1]], order[movable[slot]] = key, above
        moved.update((key, above))
        swaps.append((key, above))
    return swaps


def propose(document: Mapping[str, Any], flows: FlowSet, menus: Iterable[MenuRef],
            choices: Mapping[str, Mapping[str, int]], *, min_sample: int) -> Proposal:
    """A new version of `document` (the source of `flows`) ordering `menus`' options by `choices`
    (node id → key → times chosen by the segment's callers)."""
    new = copy.deepcopy(dict(document))
    fixed = universal_keys(flows)
    ambiguous = _ambiguous(flows)
    moves: list[Move] = []
    skipped: list[Skipped] = []
    samples: dict[MenuRef, int] = {}
    for flow, node_id in sorted(menus):
        node = flows.flows[flow].nodes[node_id]
        assert isinstance(node, MenuNode)
        if node_id in ambiguous:
            skipped.append(Skipped(flow, node_id, f"node id {node_id!r} names a menu in flows "
                                   f"{', '.join(ambiguous[node_id])}: the journeys cannot tell them apart"))
            continue
        if node.prompt is not None:
            skipped.append(Skipped(flow, node_id, "one recorded prompt: its recording fixes the order"))
            continue
        chosen = {key: n for key, n in choices.get(node_id, {}).items() if key in node.options}
        samples[(flow, node_id)] = sample = sum(chosen.values())
        if sample < min_sample:
            skipped.append(Skipped(flow, node_id, f"{sample} choices measured, fewer than {min_sample}"))
            continue
        order = list(node.options)
        swaps = reorder(order, chosen, fixed)
        if not swaps:
            skipped.append(Skipped(flow, node_id, f"already in order of use ({sample} choices)"))
            continue
        before = list(node.options)
        for key, down in swaps:
            moves.append(Move(flow, node_id, key, node.options[key].shown, chosen.get(key, 0), down,
                              chosen.get(down, 0), before.index(key) + 1, order.index(key) + 1))
        options = new["flows"][flow]["nodes"][node_id]["options"]
        by_key = {str(k): k for k in options}
        new["flows"][flow]["nodes"][node_id]["options"] = {by_key[k]: options[by_key[k]] for k in order}
    return Proposal(new, tuple(moves), tuple(skipped), samples)
