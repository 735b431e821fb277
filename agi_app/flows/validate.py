"""Semantic checks of a FlowSet: what JSON Schema cannot see.

Each check returns `Issue`s naming the file and `flow/node`: references to unknown nodes, nodes
no caller can reach, loops with no exit, duplicate or clashing keys, transfers to destinations
that are not configured, process nodes naming unknown services, prompts that do not render (for
known and unknown callers, in each language) or that name recorded sounds that do not exist, and
prompts that would speak personal or account data before the caller has authenticated.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from datetime import date
from pathlib import Path
from typing import Any

from agi_app.flows.disclosure import ACCOUNT, load_catalogue, prompt_disclosures
from agi_app.flows.loader import Issue
from agi_app.flows.model import (
    RETURN,
    CollectNode,
    ConditionNode,
    FlowSet,
    MenuNode,
    Node,
    Option,
    ProcessNode,
    SubNode,
    TransferNode,
)
from agi_app.flows.prompts import PromptError, render
from agi_app.media.items import missing_sounds
from agi_app.secure import SecretDigits, for_templates

SECRET_NAMES = re.compile(r"pin|otp|password|passcode|cvv|card|code")


class _AnyVars(dict[str, Any]):
    """Collected variables at validation time: any name renders (as a plausible digit string), and
    a variable some collect gathers securely as what templates see of one at run time."""

    def __init__(self, secure: Collection[str] = ()) -> None:
        super().__init__()
        self.secure = frozenset(secure)

    def __missing__(self, key: str) -> object:
        return for_templates(SecretDigits("1234")) if key in self.secure else "1234"


def secure_variables(fs: FlowSet) -> frozenset[str]:
    """Variables a `secure: true` collect fills, in any flow."""
    return frozenset(node.variable for flow in fs.flows.values() for node in flow.nodes.values()
                     if isinstance(node, CollectNode) and node.secure)


def sample_contexts(secure: Collection[str] = ()) -> list[dict[str, Any]]:
    """Callers every prompt must render for: unknown, and a known customer with every field; the
    `secure` variables hold secure samples."""
    customer = {"customer_id": "C0", "name": "Wang", "salutation": "Mr", "segment": "vip",
                "language": "en", "bill_due_date": date(2026, 1, 1), "flags": {"bill_due": True},
                "phones": ("13800138000",)}
    base: dict[str, Any] = {
        "line": {"number": "95000", "name": "General"}, "time_of_day": "morning",
        "calendar": {"status": "open", "holiday_name": None, "next_open": None},
        "notices": [{"kind": "product", "text": "A notice.", "sound": None}],
        "vars": _AnyVars(secure),
    }
    return [{**base, "customer": None}, {**base, "customer": customer}]


def semantic_issues(fs: FlowSet, file: str, *, sounds_dir: Path | None = None,
                    services: Collection[str] | None = None) -> list[Issue]:
    issues: list[Issue] = []
    if fs.default_line not in fs.lines:
        issues.append(Issue(file, "default_line", f"line {fs.default_line!r} is not defined under lines"))
    for number, line in fs.lines.items():
        if line.flow not in fs.flows:
            issues.append(Issue(file, f"lines/{number}", f"unknown flow {line.flow!r}"))
        if line.agent not in fs.destinations:
            issues.append(Issue(file, f"lines/{number}", f"agent destination {line.agent!r} is not configured"))
    languages = sorted({line.language for line in fs.lines.values()} | {"zh", "en"})
    secure = secure_variables(fs)
    before_auth = reachable_before_auth(fs)
    for flow in fs.flows.values():
        if flow.start not in flow.nodes:
            issues.append(Issue(file, f"{flow.name}", f"start node {flow.start!r} does not exist"))
        for node in flow.nodes.values():
            where = f"{flow.name}/{node.id}"
            issues.extend(Issue(file, where, message) for message in _node_problems(fs, flow.name, node, services))
            issues.extend(_prompt_issues(node, where, file, languages, sounds_dir, secure,
                                         authenticated=(flow.name, node.id) not in before_auth))
    issues.extend(_reachability(fs, file))
    issues.extend(_loops(fs, file))
    issues.extend(_disclosure_issues(fs, file, languages, sounds_dir))
    return issues


def _node_problems(fs: FlowSet, flow: str, node: Node, services: Collection[str] | None) -> Iterator[str]:
    for label, ref in node.refs():
        if ref != RETURN and fs.resolve(flow, ref) is None:
            yield f"{label} refers to unknown node {ref!r}"
    match node:
        case TransferNode() if node.destination not in (None, *fs.destinations):
            yield (f"transfer destination {node.destination!r} is not configured"
                   f" (configured: {', '.join(sorted(fs.destinations))})")
        case ProcessNode() if services is not None and node.service not in services:
            yield f"unknown service {node.service!r} (known: {', '.join(sorted(services)) or 'none'})"
        case SubNode() if node.flow not in fs.flows:
            yield f"sub-flow {node.flow!r} does not exist"
        case CollectNode():
            if node.min_length > node.max_length:
                yield "min_length is greater than max_length"
            if not node.secure and SECRET_NAMES.search(node.variable):
                yield f"variable {node.variable!r} looks like secret input: set `secure: true`"
        case MenuNode():
            yield from _menu_problems(fs, node)


def _menu_problems(fs: FlowSet, node: MenuNode) -> Iterator[str]:
    options = node.options
    if node.prompt is None and node.intro is None:
        yield "missing prompt: a menu needs `prompt` or `intro`"
    if node.prompt is None and node.intro is not None:
        for key, option in options.items():
            if option.say is None:
                yield f"option {key} is never announced: a composed menu needs `say` on every option"
    if node.universal_keys:
        universal = {"agent": fs.keys.agent, "back": fs.keys.back, "repeat": fs.keys.repeat}
        for name, universal_key in universal.items():
            clash = options.get(universal_key) if universal_key is not None else None
            if clash is not None and not (name == "agent" and _is_agent_option(clash)):
                yield (f"key {universal_key} is both option {clash.shown!r} and the"
                       f" universal {name} key (set universal_keys: false on this menu, or pick another key)")


def _is_agent_option(option: Option) -> bool:
    """An explicit option for the agent key is fine when it says what the key does anyway."""
    return option.service == "agent"


def _prompt_issues(node: Node, where: str, file: str, languages: list[str], sounds_dir: Path | None,
                   secure: Collection[str], *, authenticated: bool = False) -> list[Issue]:
    """Each prompt renders for every sample caller; after authentication the caller is always known."""
    issues: set[Issue] = set()
    contexts = [c for c in sample_contexts(secure) if c["customer"] is not None or not authenticated]
    for label, prompt in node.prompts():
        for language in languages:
            for context in contexts:
                try:
                    items = render(prompt, language, context)
                except PromptError as exc:
                    issues.add(Issue(file, where, f"{label} ({language}): {exc}"))
                    break
                if sounds_dir is not None:
                    for missing in missing_sounds(items, sounds_dir):
                        issues.add(Issue(file, where, f"{label}: recorded sound {missing!r} does not exist"))
    return sorted(issues, key=str)


def reachable_before_auth(fs: FlowSet) -> frozenset[tuple[str, str]]:
    """(flow, node) a caller may reach before passing authentication in this call: a walk from each
    line's entry that never takes a branch testing `{authenticated: true}` (the runner sets that
    state only when a service authenticated the caller). What it does not reach is reachable
    solely after authentication, where the caller's name and account data may be spoken.

    Deliberately simple: a node the walk reaches is pre-authentication however else it may be
    reached (e.g. a sub-flow used both before and after), and the walk does not follow a sub-flow's
    `return` into the caller's `next` (the sub node's own `next` edge already leads there).
    """
    seen: set[tuple[str, str]] = set()
    stack = [(line.flow, fs.flows[line.flow].start) for line in fs.lines.values() if line.flow in fs.flows]
    while stack:
        here = stack.pop()
        flow = fs.flows.get(here[0])
        if here in seen or flow is None or here[1] not in flow.nodes:
            continue
        seen.add(here)
        node = flow.nodes[here[1]]
        refs = ([b.next for b in node.branches if b.when.authenticated is not True] + [node.otherwise]
                if isinstance(node, ConditionNode) else [ref for _, ref in node.refs()])
        stack.extend(t for t in (fs.resolve(flow.name, ref) for ref in refs) if t is not None)
    return frozenset(seen)


def _lines_reaching(fs: FlowSet) -> dict[tuple[str, str], set[str]]:
    """The lines (dialled numbers) from whose entry flow each node can be reached."""
    graph = _edges(fs)
    reaching: dict[tuple[str, str], set[str]] = {}
    for number, line in fs.lines.items():
        if line.flow not in fs.flows:
            continue
        stack, seen = [(line.flow, fs.flows[line.flow].start)], set()
        while stack:
            here = stack.pop()
            if here in seen or here not in graph:
                continue
            seen.add(here)
            reaching.setdefault(here, set()).add(number)
            stack.extend(graph[here])
    return reaching


def _disclosure_issues(fs: FlowSet, file: str, languages: list[str], sounds_dir: Path | None) -> list[Issue]:
    """Prompts that would speak personal or account data to a caller who has not authenticated.

    The name and salutation are allowed in a node only if every line reaching it opts in
    (`greet_by_name: before_auth`); account data never. Recorded sounds are judged by the marks in
    the prompts folder's prompts.yaml, so only when a folder is given (as for sound existence).
    """
    catalogue = load_catalogue(sounds_dir / "prompts.yaml") if sounds_dir is not None else {}
    reaching = _lines_reaching(fs)
    issues: set[Issue] = set()
    for flow_name, node_id in reachable_before_auth(fs):
        node = fs.flows[flow_name].nodes[node_id]
        lines = reaching.get((flow_name, node_id), set())
        without = sorted(n for n in lines if fs.lines[n].greet_by_name != "before_auth")
        name_allowed = bool(lines) and not without
        opt_in = (f"set greet_by_name: before_auth on line{'s' * (len(without) > 1)} {', '.join(without)}"
                  " to allow the name" if without
                  else "set greet_by_name: before_auth on its line to allow the name")
        for label, prompt in node.prompts():
            for found in sorted(prompt_disclosures(prompt, catalogue, sample_contexts(), languages)):
                if found.kind != ACCOUNT and name_allowed:
                    continue
                if found.sound:
                    message = (f"{label} plays recorded sound {found.what!r} before authentication:"
                               f" its words disclose {found.kind} data")
                    message += f" ({opt_in})" if found.kind != ACCOUNT else ""
                else:
                    hint = (opt_in if found.kind != ACCOUNT else "personal and account data are spoken only after"
                            " PIN authentication; an `if` may still test them")
                    message = f"{label} speaks {found.what} before authentication ({hint})"
                issues.add(Issue(file, f"{flow_name}/{node_id}", message))
    return sorted(issues, key=str)


def _edges(fs: FlowSet) -> dict[tuple[str, str], set[tuple[str, str]]]:
    graph: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for flow in fs.flows.values():
        for node in flow.nodes.values():
            targets = {fs.resolve(flow.name, ref) for _, ref in node.refs()}
            graph[(flow.name, node.id)] = {t for t in targets if t is not None}
    return graph


def _reachability(fs: FlowSet, file: str) -> list[Issue]:
    """Nodes no line's entry flow can reach are dead data: probably a typo in a `next`."""
    graph = _edges(fs)
    seen: set[tuple[str, str]] = set()
    stack = [(line.flow, fs.flows[line.flow].start) for line in fs.lines.values() if line.flow in fs.flows]
    while stack:
        here = stack.pop()
        if here in seen or here not in graph:
            continue
        seen.add(here)
        stack.extend(graph[here])
    return [Issue(file, f"{f}/{n}", "unreachable: no line's flow leads here") for f, n in graph if (f, n) not in seen]


def _loops(fs: FlowSet, file: str) -> list[Issue]:
    """Cycles the caller can never leave, or that spin without ever waiting for the caller."""
    graph = _edges(fs)
    issues = []
    for component in _strongly_connected(graph):
        first = component[0]
        if len(component) == 1 and first not in graph[first]:
            continue
        members = set(component)
        names = " → ".join(f"{f}/{n}" for f, n in component)
        nodes = [fs.flows[f].nodes[n] for f, n in component]
        exits = any(t not in members for c in component for t in graph[c]) or any(n.can_end() for n in nodes)
        if not exits:
            issues.append(Issue(file, f"{first[0]}/{first[1]}", f"loop with no exit: {names}"))
        elif not any(n.waits_for_caller for n in nodes):
            issues.append(Issue(file, f"{first[0]}/{first[1]}", f"loop never waits for the caller: {names}"))
    return issues


def _strongly_connected(graph: dict[tuple[str, str], set[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
    """Tarjan's algorithm, iterative (flows can be deep)."""
    index: dict[tuple[str, str], int] = {}
    low: dict[tuple[str, str], int] = {}
    on_stack: set[tuple[str, str]] = set()
    stack: list[tuple[str, str]] = []
    result: list[list[tuple[str, str]]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component))
    return result
