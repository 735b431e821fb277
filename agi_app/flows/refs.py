"""Node references: `node` (same flow), `flow:node`, `flow:` (that flow's start node), and
`return` (leave the current sub-flow, back to the `sub` node's `next`)."""

from __future__ import annotations

from collections.abc import Iterator

from agi_app.flows.model import FlowSet, Node

RETURN = "return"
_FIELDS = ("next", "on_invalid_exceeded", "on_timeout_exceeded", "on_failure", "on_refused", "on_failed", "else")


def node_refs(node: Node) -> Iterator[tuple[str, str]]:
    """(field label, reference) for every place a node may continue to."""
    if node.next:
        yield "next", node.next
    for key in _FIELDS[1:]:
        if node.get(key):
            yield key, node.get(key)
    for key, option in (node.get("options") or {}).items():
        yield f"option {key}", option["next"]
    for index, branch in enumerate(node.get("branches") or [], start=1):
        yield f"branch {index}", branch["next"]
    if node.type == "sub":
        yield "flow", f"{node.get('flow')}:"


def resolve(fs: FlowSet, current_flow: str, ref: str) -> tuple[str, str] | None:
    """(flow, node id) a reference points to, or None if it points nowhere (or is `return`)."""
    if ref == RETURN:
        return None
    flow_name, sep, node_id = ref.partition(":")
    if not sep:
        flow_name, node_id = current_flow, ref
    flow = fs.flows.get(flow_name)
    if flow is None:
        return None
    node_id = node_id or flow.start
    return (flow_name, node_id) if node_id in flow.nodes else None
