"""Flows as data: immutable typed objects built once from a validated flow file.

A `FlowSet` is one published menu version: lines (DNIS → entry flow), transfer destinations,
flows made of nodes, and settings. Calls hold on to the FlowSet they started with, so a hot
reload never changes a call mid-way.

Each node type is one frozen class that owns its fields and their defaults (declared once, here),
the references it may continue to (`refs`), its prompt templates (`prompts`) and what the
validator must know about it (`can_end`, `waits_for_caller`). The classes are pure data: the
behaviour lives with the code that walks them — `runner.py` (a call), `cost.py` (time to
service), `validate.py` (checks) — which dispatch on the node's class with `match`; in the runner
and the cost walk mypy checks the match is exhaustive over `Node`. (`run`/`cost` methods on the
classes would make this module import the call protocol, media and services, and mix a node's
data with two ways of walking it.) Adding a node type is one class here (added to `Node` and
`NODE_TYPES`), its entry in `schema.json` and its test; mypy then names each walk that must
learn it. The loader fills a class from a node's document keys: a field's name is its key
(`doc_key` when the key is a Python keyword: `if`, `else`), and its role says how the value is
read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, ClassVar

Prompt = Mapping[str, str]  # language -> jinja2 template ("*" = any language)

#: Leave the current sub-flow, back to the `next` of the `sub` node that entered it.
RETURN = "return"

# Field roles: how the loader reads a document value, and which fields `refs`/`prompts` collect.
REF, PROMPT, OPTIONS, BRANCHES, CONDITION, PARAMS, RULES = (
    "ref", "prompt", "options", "branches", "condition", "params", "rules")


def typed_field(role: str, *, required: bool = False, doc_key: str | None = None) -> Any:
    """A field with a role (a reference, a prompt, a structured value), written under `doc_key`
    in flow files when its name cannot be (`else`). Optional ones default to None, or empty
    params."""
    metadata = {"role": role, "doc_key": doc_key} if doc_key else {"role": role}
    if required:
        return field(metadata=metadata)
    if role == PARAMS:
        return field(default_factory=dict, metadata=metadata)
    if role == RULES:
        return field(default=(), metadata=metadata)
    return field(default=None, metadata=metadata)


def ref_field(*, required: bool = False, doc_key: str | None = None) -> Any:
    return typed_field(REF, required=required, doc_key=doc_key)


def prompt_field(*, required: bool = False) -> Any:
    return typed_field(PROMPT, required=required)


def field_key(f: Field[Any]) -> str:
    """The key a field is written under in a flow file."""
    return str(f.metadata.get("doc_key") or f.name)


def field_role(f: Field[Any]) -> str | None:
    return f.metadata.get("role")


@dataclass(frozen=True)
class Condition:
    """The tests of one `if` (all must hold); an absent test is no test. `within_days` holds the
    `<fact>_within_days` tests (`bill_due_within_days: 3` → {"bill_due": 3})."""

    segment: tuple[str, ...] | None = None
    language: tuple[str, ...] | None = None
    line: tuple[str, ...] | None = None
    known: bool | None = None
    flag: str | None = None
    within_days: Mapping[str, int] = field(default_factory=dict)
    calendar: str | None = None
    percent: float | None = None
    notices: bool | None = None
    #: The caller passed authentication in this call (a PIN check, by a service): what follows the
    #: `true` side of such a test is the only place `menus validate` lets account data be spoken.
    authenticated: bool | None = None


@dataclass(frozen=True)
class Branch:
    when: Condition = typed_field(CONDITION, required=True, doc_key="if")
    next: str = ref_field(required=True)


@dataclass(frozen=True)
class Option:
    """One key of a menu."""

    next: str = ref_field(required=True)
    label: str = ""
    service: str | None = None  # the service this key reaches (time to service, the agent key)
    say: Prompt | None = prompt_field()  # a composed menu's announcement of this option

    @property
    def shown(self) -> str:
        """How previews and the simulator name the option."""
        return self.label or self.next


@dataclass(frozen=True, kw_only=True)
class NodeBase:
    """What every node has. Subclasses set `type` (its name in flow files)."""

    type: ClassVar[str]
    #: A menu, collect or survey: the node waits for the caller (a loop through one is not a spin).
    waits_for_caller: ClassVar[bool] = False

    id: str
    description: str = ""

    def refs(self) -> Iterator[tuple[str, str]]:
        """(label, reference) for every place the node may continue to, in document order."""
        for f in fields(self):
            if field_role(f) == REF and (target := getattr(self, f.name)):
                yield field_key(f), target

    def prompts(self) -> Iterator[tuple[str, Prompt]]:
        """(label, prompt) for every prompt template the node may speak."""
        for f in fields(self):
            if field_role(f) == PROMPT and (value := getattr(self, f.name)) is not None:
                yield f.name, value

    def can_end(self) -> bool:
        """Whether the call may leave the flow here (the validator's loop check): by default only
        by a `return`."""
        return any(target == RETURN for _, target in self.refs())


@dataclass(frozen=True, kw_only=True)
class MenuNode(NodeBase):
    type: ClassVar[str] = "menu"
    waits_for_caller: ClassVar[bool] = True

    prompt: Prompt | None = prompt_field()
    intro: Prompt | None = prompt_field()  # a composed menu: intro, then each option's `say` and key
    options: Mapping[str, Option] = typed_field(OPTIONS, required=True)
    universal_keys: bool = True
    max_invalid: int = 3
    max_timeout: int = 3
    invalid_prompt: Prompt | None = prompt_field()
    timeout_prompt: Prompt | None = prompt_field()
    on_invalid_exceeded: str | None = ref_field()
    on_timeout_exceeded: str | None = ref_field()
    timeout: float = 5.0
    inter_digit_timeout: float = 3.0

    def refs(self) -> Iterator[tuple[str, str]]:
        yield from super().refs()
        for key, option in self.options.items():
            yield f"option {key}", option.next

    def prompts(self) -> Iterator[tuple[str, Prompt]]:
        yield from super().prompts()
        for key, option in self.options.items():
            if option.say is not None:
                yield f"option {key} say", option.say

    def can_end(self) -> bool:
        """Without a final destination for invalid keys or timeouts the call ends there; the
        universal agent key always leaves."""
        return not self.on_invalid_exceeded or not self.on_timeout_exceeded or self.universal_keys


@dataclass(frozen=True, kw_only=True)
class AnnouncementNode(NodeBase):
    type: ClassVar[str] = "announcement"

    prompt: Prompt = prompt_field(required=True)
    next: str = ref_field(required=True)
    interruptible: bool = True
    service: str | None = None  # reaching this announcement counts as that service (ok)


@dataclass(frozen=True, kw_only=True)
class CollectNode(NodeBase):
    type: ClassVar[str] = "collect"
    waits_for_caller: ClassVar[bool] = True

    prompt: Prompt = prompt_field(required=True)
    variable: str
    min_length: int = 1
    max_length: int
    terminator: str = "#"
    secure: bool = False  # masked everywhere; digits typed beyond it are discarded
    max_attempts: int = 3
    next: str = ref_field(required=True)
    on_failure: str | None = ref_field()
    invalid_prompt: Prompt | None = prompt_field()
    timeout_prompt: Prompt | None = prompt_field()
    timeout: float = 6.0
    inter_digit_timeout: float = 4.0

    def can_end(self) -> bool:
        """Attempts exhausted with no `on_failure`: the flow ends here."""
        return not self.on_failure


#: Seconds a `process` node waits for its service unless `params.timeout` says otherwise.
SERVICE_TIMEOUT_S = 5.0


@dataclass(frozen=True, kw_only=True)
class ProcessNode(NodeBase):
    type: ClassVar[str] = "process"

    service: str
    params: Mapping[str, object] = typed_field(PARAMS)  # handed to the service as they are
    prompt: Prompt | None = prompt_field()  # played after the service's own `say`
    next: str = ref_field(required=True)
    on_refused: str | None = ref_field()
    on_failed: str | None = ref_field()

    @property
    def timeout(self) -> float:
        """The service's time budget: `params.timeout` (a number, by the schema) or the default."""
        value = self.params.get("timeout", SERVICE_TIMEOUT_S)
        return float(value) if isinstance(value, int | float) else SERVICE_TIMEOUT_S


@dataclass(frozen=True, kw_only=True)
class ConditionNode(NodeBase):
    type: ClassVar[str] = "condition"

    branches: tuple[Branch, ...] = typed_field(BRANCHES, required=True)
    otherwise: str = ref_field(required=True, doc_key="else")

    def refs(self) -> Iterator[tuple[str, str]]:
        yield from super().refs()
        for index, branch in enumerate(self.branches, start=1):
            yield f"branch {index}", branch.next


@dataclass(frozen=True, kw_only=True)
class TransferNode(NodeBase):
    type: ClassVar[str] = "transfer"

    prompt: Prompt | None = prompt_field()
    destination: str | None = None  # None: the line's agent destination
    service: str | None = None

    def can_end(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class JumpNode(NodeBase):
    type: ClassVar[str] = "jump"

    next: str = ref_field(required=True)


@dataclass(frozen=True, kw_only=True)
class SubNode(NodeBase):
    type: ClassVar[str] = "sub"

    flow: str
    next: str = ref_field(required=True)

    def refs(self) -> Iterator[tuple[str, str]]:
        yield from super().refs()
        yield "flow", f"{self.flow}:"


@dataclass(frozen=True, kw_only=True)
class ReturnNode(NodeBase):
    type: ClassVar[str] = "return"

    def can_end(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class SurveyNode(NodeBase):
    type: ClassVar[str] = "survey"
    waits_for_caller: ClassVar[bool] = True

    prompt: Prompt = prompt_field(required=True)
    thanks_prompt: Prompt | None = prompt_field()
    timeout: float = 6.0
    next: str = ref_field(required=True)


@dataclass(frozen=True, kw_only=True)
class RecordNode(NodeBase):
    """The caller records a message (a beep; `#`, `max_silence` seconds of silence or `max_seconds`
    end it), hears it back and keeps it (`1`) or records again (`2`); no answer keeps it. The
    recording's name goes into `variable`; nothing recorded after `max_attempts` goes `on_failure`."""

    type: ClassVar[str] = "record"
    waits_for_caller: ClassVar[bool] = True

    prompt: Prompt = prompt_field(required=True)  # before the beep: what to say, `#` to finish
    confirm_prompt: Prompt | None = prompt_field()  # after the playback: 1 to keep, 2 to record again
    variable: str
    max_seconds: int = 120
    max_silence: int = 10  # seconds; 0: silence never ends it
    max_attempts: int = 3
    timeout: float = 6.0  # for the keep / record-again key
    next: str = ref_field(required=True)
    on_failure: str | None = ref_field()

    def can_end(self) -> bool:
        return not self.on_failure


@dataclass(frozen=True, kw_only=True)
class HangupNode(NodeBase):
    type: ClassVar[str] = "hangup"

    prompt: Prompt | None = prompt_field()

    def can_end(self) -> bool:
        return True


Node = (MenuNode | AnnouncementNode | CollectNode | ProcessNode | ConditionNode | TransferNode | JumpNode
        | SubNode | ReturnNode | SurveyNode | RecordNode | HangupNode)

NODE_TYPES: Mapping[str, type[Node]] = {cls.type: cls for cls in (
    MenuNode, AnnouncementNode, CollectNode, ProcessNode, ConditionNode, TransferNode, JumpNode, SubNode,
    ReturnNode, SurveyNode, RecordNode, HangupNode)}


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


#: The dialplan context of the agent queues: extension <group> queues the call in `hotline-<group>`.
AGENTS_CONTEXT = "hotline-agents"


@dataclass(frozen=True)
class QueueRule:
    """One routing rule of a queue destination: callers for whom `if` holds go to skill group `queue`."""

    queue: str
    when: Condition = typed_field(CONDITION, required=True, doc_key="if")


@dataclass(frozen=True)
class Destination:
    """A place a call may be transferred to; nothing else is ever dialled (toll fraud).

    Either a fixed dialplan place (`context`, `extension`), or an agent queue: the skill group is
    the `queue` of the first of `rules` whose `if` holds for the caller, else the default `queue`
    (`flows.queueing.queue_for`), dialled as AGENTS_CONTEXT, <group>, 1. Only a queue destination
    announces position and wait, and may offer a callback above `callback_offer_wait_s` (the
    server's setting when absent).
    """

    name: str
    context: str = AGENTS_CONTEXT
    extension: str | None = None
    queue: str | None = None
    rules: tuple[QueueRule, ...] = typed_field(RULES)
    callback_offer_wait_s: int | None = None


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

    def resolve(self, current_flow: str, ref: str) -> tuple[str, str] | None:
        """(flow, node id) a reference points to, or None if it points nowhere (or is `return`).

        References: `node` (same flow), `flow:node`, `flow:` (that flow's start node), and
        `return` (leave the current sub-flow, back to the `sub` node's `next`).
        """
        if ref == RETURN:
            return None
        flow_name, sep, node_id = ref.partition(":")
        if not sep:
            flow_name, node_id = current_flow, ref
        flow = self.flows.get(flow_name)
        if flow is None:
            return None
        node_id = node_id or flow.start
        return (flow_name, node_id) if node_id in flow.nodes else None
