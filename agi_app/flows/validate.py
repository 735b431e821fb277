"""Semantic checks of a FlowSet: what JSON Schema cannot see.

Each check returns `Issue`s naming the file and `flow/node`: references to unknown nodes, nodes
no caller can reach, transfers to destinations that are not configured, prompts that do not
render (for a known and an unknown caller, in each language) or name recorded sounds that do
not exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from agi_app.flows.loader import Issue
from agi_app.flows.model import FlowSet, Node
from agi_app.flows.prompts import PromptError, missing_sounds, render
from agi_app.flows.refs import node_refs, resolve


def sample_contexts() -> list[dict[str, Any]]:
    """Callers every prompt must render for: unknown, and a known customer with every field."""
    customer = {"customer_id": "C0", "name": "Wang", "salutation": "Mr", "segment": "vip",
                "language": "en", "bill_due_date": date(2026, 1, 1), "flags": {}}
    base = {"line": {"number": "95000", "name": "General"}, "time_of_day": "morning"}
    return [{**base, "customer": None}, {**base, "customer": customer}]


def _prompts(node: Node) -> Iterator[tuple[str, dict[str, str]]]:
    if node.prompt is not None:
        yield "prompt", dict(node.prompt)
    for key in ("invalid_prompt", "timeout_prompt"):
        if node.get(key) is not None:
            yield key, dict(node.get(key))


def semantic_issues(fs: FlowSet, file: str, *, sounds_dir: Path | None = None) -> list[Issue]:
    issues: list[Issue] = []
    if fs.default_line not in fs.lines:
        issues.append(Issue(file, "default_line", f"line {fs.default_line!r} is not defined under lines"))
    for number, line in fs.lines.items():
        if line.flow not in fs.flows:
            issues.append(Issue(file, f"lines/{number}", f"unknown flow {line.flow!r}"))
        if line.agent not in fs.destinations:
            issues.append(Issue(file, f"lines/{number}", f"agent destination {line.agent!r} is not configured"))
    languages = sorted({line.language for line in fs.lines.values()} | {"zh", "en"})
    for flow in fs.flows.values():
        if flow.start not in flow.nodes:
            issues.append(Issue(file, f"{flow.name}", f"start node {flow.start!r} does not exist"))
        for node in flow.nodes.values():
            where = f"{flow.name}/{node.id}"
            for label, ref in node_refs(node):
                if resolve(fs, flow.name, ref) is None:
                    issues.append(Issue(file, where, f"{label} refers to unknown node {ref!r}"))
            if node.type == "transfer" and node.get("destination") not in (None, *fs.destinations):
                issues.append(Issue(file, where, f"transfer destination {node.get('destination')!r} is not configured"
                                    f" (configured: {', '.join(sorted(fs.destinations))})"))
            if node.type in ("menu", "announcement") and node.prompt is None:
                issues.append(Issue(file, where, "missing prompt"))
            issues.extend(_prompt_issues(node, where, file, languages, sounds_dir))
    issues.extend(_reachability(fs, file))
    return issues


def _prompt_issues(node: Node, where: str, file: str, languages: list[str], sounds_dir: Path | None) -> list[Issue]:
    issues = []
    for label, prompt in _prompts(node):
        for language in languages:
            for context in sample_contexts():
                try:
                    items = render(prompt, language, context)
                except PromptError as exc:
                    issues.append(Issue(file, where, f"{label} ({language}): {exc}"))
                    break
                if sounds_dir is not None:
                    for missing in missing_sounds(items, sounds_dir):
                        issues.append(Issue(file, where, f"{label}: recorded sound {missing!r} does not exist"))
            else:
                continue
            break
    return sorted(set(issues), key=str)


def _reachability(fs: FlowSet, file: str) -> list[Issue]:
    """Nodes no line's entry flow can reach are dead data: probably a typo in a `next`."""
    seen: set[tuple[str, str]] = set()
    stack = [(line.flow, fs.flows[line.flow].start) for line in fs.lines.values() if line.flow in fs.flows]
    while stack:
        flow_name, node_id = stack.pop()
        if (flow_name, node_id) in seen or node_id not in fs.flows[flow_name].nodes:
            continue
        seen.add((flow_name, node_id))
        for _, ref in node_refs(fs.flows[flow_name].nodes[node_id]):
            target = resolve(fs, flow_name, ref)
            if target is not None:
                stack.append(target)
    return [
        Issue(file, f"{flow.name}/{node_id}", "unreachable: no line's flow leads here")
        for flow in fs.flows.values() for node_id in flow.nodes if (flow.name, node_id) not in seen
    ]
