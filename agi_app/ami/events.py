"""Typed AMI queue events and members: the subset the contact centre reacts to, parsed once at the edge.

AMI sends every message as `Key: value` headers. Above the AMI adapter nothing sees those headers:
queue events become the dataclasses below, members become `agi_app.centre.queues.QueueMember`.
Events we do not model become `OtherAmiEvent` (nothing lost for logging); a malformed number reads
as 0 so a surprising header cannot crash the reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agi_app.centre.queues import QueueMember

#: app_queue's numeric device `Status` (Asterisk's AST_DEVICE_* order) as the names QueueMember uses.
DEVICE_STATUS = {
    "0": "unknown",
    "1": "not_in_use",
    "2": "in_use",
    "3": "busy",
    "4": "invalid",
    "5": "unavailable",
    "6": "ringing",
    "7": "ringinuse",
    "8": "on_hold",
}


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def member_from_headers(headers: Mapping[str, str]) -> QueueMember:
    """A queue member from QueueStatus' `QueueMember` (Location/Name) or a QueueMember* event
    (Interface/MemberName): Asterisk names the same two facts differently in each."""
    interface = headers.get("Interface") or headers.get("Location", "")
    return QueueMember(
        interface=interface,
        name=headers.get("MemberName") or headers.get("Name") or interface,
        paused=_flag(headers.get("Paused")),
        in_call=_flag(headers.get("InCall")),
        status=DEVICE_STATUS.get(headers.get("Status", "").strip(), "unknown"),
        calls_taken=_int(headers.get("CallsTaken")),
    )


@dataclass(frozen=True)
class AmiEvent:
    """Base of every AMI event; `name` is AMI's `Event` header."""

    name: str


@dataclass(frozen=True)
class AmiConnected(AmiEvent):
    """Not from Asterisk: the connection was (re)established and logged in. Events may have been
    missed while it was down, so whoever tracks state re-reads it (QueueStatus) on this."""


@dataclass(frozen=True)
class OtherAmiEvent(AmiEvent):
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CallerEvent(AmiEvent):
    """A caller in a queue: `unique_id` is the caller channel's Uniqueid (ARI's channel id)."""

    queue: str
    unique_id: str
    channel: str
    position: int


@dataclass(frozen=True)
class QueueCallerJoin(CallerEvent):
    count: int  # callers in the queue after this one joined


@dataclass(frozen=True)
class QueueCallerLeave(CallerEvent):
    """The caller left the queue: answered (then AgentConnect follows), timed out, or hung up."""

    count: int


@dataclass(frozen=True)
class QueueCallerAbandon(CallerEvent):
    """The caller hung up while waiting."""

    original_position: int
    hold_time_s: int


@dataclass(frozen=True)
class AgentEvent(AmiEvent):
    """An agent and a queued caller: `interface` is the member (e.g. PJSIP/1001)."""

    queue: str
    unique_id: str
    channel: str
    interface: str
    member_name: str


@dataclass(frozen=True)
class AgentCalled(AgentEvent):
    pass


@dataclass(frozen=True)
class AgentRingNoAnswer(AgentEvent):
    ring_time_s: int


@dataclass(frozen=True)
class AgentConnect(AgentEvent):
    hold_time_s: int
    ring_time_s: int


@dataclass(frozen=True)
class AgentComplete(AgentEvent):
    hold_time_s: int
    talk_time_s: int
    reason: str  # who hung up: caller, agent, transfer


@dataclass(frozen=True)
class QueueMemberEvent(AmiEvent):
    """QueueMemberStatus, QueueMemberPause, QueueMemberAdded, QueueMemberRemoved: the member as it is now."""

    queue: str
    member: QueueMember
    paused_reason: str = ""


MEMBER_EVENTS = frozenset({"QueueMemberStatus", "QueueMemberPause", "QueueMemberAdded", "QueueMemberRemoved"})
#: Every event name parsed into its own type (the rest become OtherAmiEvent).
QUEUE_EVENTS = frozenset({"QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled",
                          "AgentRingNoAnswer", "AgentConnect", "AgentComplete"}) | MEMBER_EVENTS


def parse_event(headers: Mapping[str, str]) -> AmiEvent:
    """One AMI event (its headers, `Event` included) as its typed dataclass."""
    name = headers.get("Event", "")
    h = headers.get
    queue, unique_id, channel = h("Queue", ""), h("Uniqueid", ""), h("Channel", "")
    if name in ("QueueCallerJoin", "QueueCallerLeave"):
        kind = QueueCallerJoin if name == "QueueCallerJoin" else QueueCallerLeave
        return kind(name, queue, unique_id, channel, _int(h("Position")), count=_int(h("Count")))
    if name == "QueueCallerAbandon":
        return QueueCallerAbandon(name, queue, unique_id, channel, _int(h("Position")),
                                  original_position=_int(h("OriginalPosition")), hold_time_s=_int(h("HoldTime")))
    interface, member_name = h("Interface", ""), h("MemberName", "")
    if name == "AgentCalled":
        return AgentCalled(name, queue, unique_id, channel, interface, member_name)
    if name == "AgentRingNoAnswer":
        return AgentRingNoAnswer(name, queue, unique_id, channel, interface, member_name,
                                 ring_time_s=_int(h("RingTime")))
    if name == "AgentConnect":
        return AgentConnect(name, queue, unique_id, channel, interface, member_name,
                            hold_time_s=_int(h("HoldTime")), ring_time_s=_int(h("RingTime")))
    if name == "AgentComplete":
        return AgentComplete(name, queue, unique_id, channel, interface, member_name,
                             hold_time_s=_int(h("HoldTime")), talk_time_s=_int(h("TalkTime")), reason=h("Reason", ""))
    if name in MEMBER_EVENTS:
        return QueueMemberEvent(name, queue, member_from_headers(headers), paused_reason=h("PausedReason", "").strip())
    return OtherAmiEvent(name, headers=dict(headers))
