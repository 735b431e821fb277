"""The flows drawn for a manager: a Graphviz DOT document of every line, flow (a cluster each, so
sub-flows stand apart) and node (its shape and colour by type), with menu keys, conditions and
variants on the edges, optionally overlaid with a day's traffic per node (visits, drop-offs).

Pure: the text only. Rendering it (`dot -Tsvg`) is the caller's business (agi_app/admin/graph.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from agi_app.flows.model import (
    Condition,
    ConditionNode,
    FlowSet,
    MenuNode,
    Node,
    SubNode,
)


@dataclass(frozen=True)
class NodeTraffic:
    """A node's figures for the day (agi_app/analytics/kpi.py `nodes`)."""

    visits: int = 0
    drop_offs: int = 0


@dataclass(frozen=True)
class Style:
    shape: str
    fill: str
    meaning: str  # the legend's words


#: How each node type looks, and what the legend says of it.
STYLES: Mapping[str, Style] = {
    "menu": Style("box", "#cfe2ff", "menu: the caller presses a key"),
    "announcement": Style("note", "#f8f9fa", "announcement: a prompt is played"),
    "collect": Style("parallelogram", "#e2d9f3", "collect: the caller types digits"),
    "process": Style("component", "#d1e7dd", "process: a banking service runs"),
    "condition": Style("diamond", "#fff3cd", "condition: segment, flag, calendar or variant"),
    "transfer": Style("house", "#ffd8a8", "transfer: to agents"),
    "jump": Style("circle", "#e9ecef", "jump"),
    "sub": Style("box3d", "#cff4fc", "sub: runs a sub-flow, then continues"),
    "return": Style("invhouse", "#e9ecef", "return: back from a sub-flow"),
    "survey": Style("tab", "#fce4ec", "survey: the caller rates the call"),
    "record": Style("cylinder", "#f3d9fa", "record: the caller leaves a message"),
    "hangup": Style("octagon", "#f8d7da", "hangup: the call ends"),
}
_UNKNOWN_STYLE = Style("ellipse", "#ffffff", "other")
#: Border of a node callers left the call at (its drop-offs), on the overlay.
DROP_OFF_COLOUR = "#dc3545"


def quote(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def node_key(flow: str, node: str) -> str:
    """The DOT id of a node: node ids are unique within a flow only."""
    return quote(f"{flow}:{node}")


def describe(condition: Condition) -> str:
    """One `if` as a reader says it (every test must hold)."""
    tests: list[str] = []
    if condition.segment is not None:
        tests.append("segment " + "/".join(condition.segment))
    if condition.language is not None:
        tests.append("language " + "/".join(condition.language))
    if condition.line is not None:
        tests.append("line " + "/".join(condition.line))
    if condition.known is not None:
        tests.append("known caller" if condition.known else "unknown caller")
    if condition.flag is not None:
        tests.append(f"flag {condition.flag}")
    tests += [f"{fact} within {days} d" for fact, days in condition.within_days.items()]
    if condition.calendar is not None:
        tests.append(condition.calendar)
    if condition.percent is not None:
        tests.append(f"variant {condition.percent:g}%")
    if condition.notices is not None:
        tests.append("notices" if condition.notices else "no notices")
    if condition.authenticated is not None:
        tests.append("authenticated" if condition.authenticated else "not authenticated")
    return " & ".join(tests) or "always"


@dataclass(frozen=True)
class Edge:
    target: str  # a reference, as the flow file writes it
    label: str = ""
    dashed: bool = False  # a way out when things go wrong (invalid, timeout, failure)


def edges(node: Node) -> Iterator[Edge]:
    """Where a node may continue, labelled as the designer wrote it."""
    if isinstance(node, MenuNode):
        for key, option in node.options.items():
            yield Edge(option.next, f"{key}: {option.shown}")
        if node.on_invalid_exceeded:
            yield Edge(node.on_invalid_exceeded, f"{node.max_invalid}× invalid", dashed=True)
        if node.on_timeout_exceeded:
            yield Edge(node.on_timeout_exceeded, f"{node.max_timeout}× no key", dashed=True)
        return
    if isinstance(node, ConditionNode):
        for branch in node.branches:
            yield Edge(branch.next, describe(branch.when))
        yield Edge(node.otherwise, "else")
        return
    if isinstance(node, SubNode):
        yield Edge(f"{node.flow}:", f"runs {node.flow}", dashed=True)
        yield Edge(node.next, "after")
        return
    for label, target in node.refs():
        yield Edge(target, "" if label == "next" else label.replace("on_", ""), dashed=label != "next")


def _node_label(node: Node, traffic: NodeTraffic | None) -> str:
    words = [node.id, f"({node.type})"]
    service = getattr(node, "service", None)
    if service:
        words.append(f"service {service}")
    if traffic is not None:
        words.append(f"visits {traffic.visits} · drop-offs {traffic.drop_offs}")
    return "\n".join(words)


def _node_line(flow: str, node: Node, traffic: Mapping[str, NodeTraffic] | None, busiest: int) -> str:
    style = STYLES.get(node.type, _UNKNOWN_STYLE)
    seen = traffic.get(node.id, NodeTraffic()) if traffic is not None else None
    attrs = {"label": quote(_node_label(node, seen)), "shape": style.shape, "fillcolor": quote(style.fill),
             "style": quote("filled,rounded" if node.type == "menu" else "filled")}
    if node.description:
        attrs["tooltip"] = quote(node.description)
    if seen is not None:
        attrs["penwidth"] = f"{1 + 4 * seen.visits / busiest:.2f}" if busiest else "1"
        if seen.drop_offs:
            attrs["color"] = quote(DROP_OFF_COLOUR)
    return f"    {node_key(flow, node.id)} [{', '.join(f'{k}={v}' for k, v in attrs.items())}];"


def flow_dot(flows: FlowSet, *, title: str = "", traffic: Mapping[str, NodeTraffic] | None = None) -> str:
    """The DOT document of `flows`; with `traffic` (per node id, the journeys' key) each node shows
    its visits and drop-offs, its border as thick as its share of the busiest node's visits, red
    where callers left."""
    out = ["digraph hotline {", f"  label={quote(title)}; labelloc=t; fontname=\"Noto Sans CJK SC,sans-serif\";",
           "  rankdir=LR; node [fontname=\"Noto Sans CJK SC,sans-serif\", fontsize=10];",
           "  edge [fontname=\"Noto Sans CJK SC,sans-serif\", fontsize=9];"]
    busiest = max((t.visits for t in traffic.values()), default=0) if traffic else 0
    for number, line in flows.lines.items():
        name = f"line {number}" + (f"\n{line.name}" if line.name else "") + f"\n{line.language}"
        out.append(f"  {quote('line:' + number)} [label={quote(name)}, shape=cds, style=filled, "
                   f"fillcolor=\"#212529\", fontcolor=white];")
        start = flows.resolve(line.flow, f"{line.flow}:")
        if start is not None:
            out.append(f"  {quote('line:' + number)} -> {node_key(*start)};")
    for index, (name, flow) in enumerate(flows.flows.items()):
        out += [f"  subgraph cluster_{index} {{", f"    label={quote('flow ' + name)}; style=rounded; color=\"#6c757d\";"]
        out += [_node_line(name, node, traffic, busiest) for node in flow.nodes.values()]
        out.append("  }")
    for name, flow in flows.flows.items():
        for node in flow.nodes.values():
            for edge in edges(node):
                target = flows.resolve(name, edge.target)
                if target is None:
                    continue  # `return`: back to the sub node's `after` edge
                attrs = [f"label={quote(edge.label)}"] if edge.label else []
                if edge.dashed:
                    attrs.append("style=dashed")
                out.append(f"  {node_key(name, node.id)} -> {node_key(*target)}"
                           + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"
