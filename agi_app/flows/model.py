"""Flows as data: immutable objects built from a validated flow file.

A `FlowSet` is one published menu version: lines (DNIS → entry flow), transfer destinations,
flows made of nodes, and settings. Calls hold on to the FlowSet they started with, so a hot
reload never changes a call mid-way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Prompt = Mapping[str, str]  # language -> jinja2 template ("*" = any language)


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    prompt: Prompt | None = None
    next: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


@dataclass(frozen=True)
class Flow:
    name: str
    start: str
    nodes: Mapping[str, Node]


@dataclass(frozen=True)
class Line:
    number: str
    flow: str
    name: str = ""
    language: str = "zh"
    agent: str = "general"  # transfer destination for the agent key and destination-less transfers
    #: "after_auth" (default): the caller's name is spoken only after PIN authentication; a number
    #: can be spoofed. "before_auth": the bank accepts that risk for this line (menu validation then
    #: allows name and salutation, never account data, in the nodes only such lines reach).
    greet_by_name: str = "after_auth"


@dataclass(frozen=True)
class Destination:
    """A place a call may be transferred to; nothing else is ever dialled (toll fraud)."""

    name: str
    context: str
    extension: str


@dataclass(frozen=True)
class UniversalKeys:
    agent: str | None = "0"
    back: str | None = "*"
    repeat: str | None = "9"


@dataclass(frozen=True)
class FlowSet:
    lines: Mapping[str, Line]
    default_line: str
    destinations: Mapping[str, Destination]
    flows: Mapping[str, Flow]
    keys: UniversalKeys = UniversalKeys()
    default_language: str = "zh"
    max_depth: int = 3
    bill_due_days: int = 7
    version: int | None = None
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def line_for(self, dnis: str) -> tuple[Line, bool]:
        """The line for a dialled number, and whether it was known (unknown → default line)."""
        if dnis in self.lines:
            return self.lines[dnis], True
        return self.lines[self.default_line], False
