"""What a prompt template would tell a caller about themselves (SPEC, call handling 1).

A calling number can be spoofed, so until the caller has passed PIN authentication nothing spoken
may reveal personal or account data. The directory may still shape the call *silently*: a template
may test any customer field in an `if` (conditions are not spoken), but only `customer.language`
(the call is in that language anyway) may reach speech. This module reads a template's jinja2
syntax tree and names what it would speak; `validate.py` decides where that is allowed.

Recorded prompts cannot be read this way: prompts.yaml marks the ones whose words disclose
something (`discloses: account` or `personal`), and `load_catalogue` returns those marks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes

from agi_app.flows.prompts import PromptError, render
from agi_app.media.items import Sound
from agi_app.media.voice import load_prompt_disclosures

#: Customer fields that are personal but may be spoken before authentication on a line that opts in
#: (`greet_by_name: before_auth`). Every other field but `SILENT_FIELDS` is never spoken before it.
NAME_FIELDS = frozenset({"name", "salutation"})
SILENT_FIELDS = frozenset({"language"})

PERSONAL, ACCOUNT = "personal", "account"

_PARSER = jinja2.Environment(autoescape=False)  # parsing only: the same syntax as the prompt sandbox


@dataclass(frozen=True, order=True)
class Disclosure:
    """One thing a prompt would say about the caller: a customer field or a recorded sound."""

    kind: str  # PERSONAL (name, salutation) or ACCOUNT (anything else about the customer)
    what: str  # "customer.name" or a sound id
    sound: bool = False


def load_catalogue(prompts_file: Path) -> dict[str, str]:
    """`{sound id: kind}` of the recorded prompts that disclose something; {} without a prompt list."""
    return load_prompt_disclosures(prompts_file) if prompts_file.is_file() else {}


def prompt_disclosures(prompt: Mapping[str, str], catalogue: Mapping[str, str],
                       contexts: Iterable[Mapping[str, Any]], languages: Iterable[str]) -> set[Disclosure]:
    """Everything one prompt (each of its language templates) could speak about the caller.

    Recorded sounds are found twice: literal `sound('id')` calls wherever they stand in the
    template, and the sounds it actually renders for the sample callers (ids built at run time).
    """
    found: set[Disclosure] = set()
    sound_ids: set[str] = set()
    for source in set(prompt.values()):
        try:
            tree = _PARSER.parse(source)
        except jinja2.TemplateSyntaxError:
            continue  # reported by the rendering check
        for path, field in _spoken_customer_data(tree, spoken=True):
            if field not in SILENT_FIELDS:
                found.add(Disclosure(PERSONAL if field in NAME_FIELDS else ACCOUNT, path))
        sound_ids.update(_literal_sounds(tree))
    for language in languages:
        for context in contexts:
            try:
                sound_ids.update(i.id for i in render(prompt, language, context) if isinstance(i, Sound))
            except PromptError:
                continue  # reported by the rendering check
    found.update(Disclosure(catalogue[i], i, sound=True) for i in sound_ids if i in catalogue)
    return found


def _customer_path(node: nodes.Node) -> tuple[str, str | None] | None:
    """("customer.flags.bill_due", "flags") for an attribute chain on `customer`; None otherwise."""
    parts: list[str] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
        else:
            parts.append(str(node.arg.value) if isinstance(node.arg, nodes.Const) else "[…]")
        node = node.node
    if not (isinstance(node, nodes.Name) and node.name == "customer" and node.ctx == "load"):
        return None
    parts.reverse()
    return ".".join(["customer", *parts]), parts[0] if parts else None


def _spoken_customer_data(node: nodes.Node, *, spoken: bool) -> Iterator[tuple[str, str | None]]:
    """Customer data whose value can reach speech: anywhere but the test of an `if`, a conditional
    expression or a loop filter. Deliberately strict: `{% set x = customer.name %}` counts, since
    what is assigned is usually spoken; test the field in the `if` itself instead."""
    if isinstance(node, nodes.If | nodes.CondExpr):
        yield from _spoken_customer_data(node.test, spoken=False)
        branches = (node.body, node.elif_, node.else_) if isinstance(node, nodes.If) else ((node.expr1, node.expr2),)
        for branch in branches:
            for child in branch:
                if child is not None:
                    yield from _spoken_customer_data(child, spoken=spoken)
        return
    if isinstance(node, nodes.For) and node.test is not None:
        yield from _spoken_customer_data(node.test, spoken=False)
        for child in (node.target, node.iter, *node.body, *node.else_):
            yield from _spoken_customer_data(child, spoken=spoken)
        return
    found = _customer_path(node)
    if found is not None:
        if spoken:
            yield found
        return
    for child in node.iter_child_nodes():
        yield from _spoken_customer_data(child, spoken=spoken)


def _literal_sounds(tree: nodes.Template) -> Iterator[str]:
    for call in tree.find_all(nodes.Call):
        if (isinstance(call.node, nodes.Name) and call.node.name == "sound" and call.args
                and isinstance(call.args[0], nodes.Const) and isinstance(call.args[0].value, str)):
            yield call.args[0].value
