"""Node references: `node` (same flow), `flow:node`, or `flow:` (that flow's start node)."""

from __future__ import annotations

from collections.abc import Iterator

from agi_app.flows.model import FlowSet, Node


def node_refs(node: Node) -> Iterator[tuple[str, str]]:
    """(field label, reference) for every place a node points to another."""
    if node.next:
        yield "next", node.next
    for key, option in (node.get("options") or {}).items():
        yield f"option {key}", option["next"]
    for key in ("on_invalid_exceeded", "on_timeout_exceeded"):
        if node.get(key):
            yield key, node.get(key)


def resolve(fs: FlowSet, current_flow: str, ref: str) -> tuple[str, str] | None:
    """(flow, node id) a reference points to, or None if it points nowhere."""
    flow_name, sep, node_id = ref.partition(":")
    if not sep:
        flow_name, node_id = current_flow, ref
    flow = fs.flows.get(flow_name)
    if flow is None:
        return None
    node_id = node_id or flow.start
    return (flow_name, node_id) if node_id in flow.nodes else None
