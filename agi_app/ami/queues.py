"""Queues and agents over AMI: live queue state (`AmiQueueState`) and the agent actions behind
`hotline agents` (QueueAdd, QueueRemove, QueuePause, QueueStatus).

Names: everything above this module speaks of skill *groups* (`general`, `vip`); Asterisk's queues are
`hotline-<group>` (config/asterisk/queues.conf.j2). `asterisk_queue` and `group_of` are the one place
that maps between them; queues without the prefix are not ours and are left out.

Agents are PJSIP endpoints: agent `1001` is the member `PJSIP/1001` (its device state from the same
interface). Agent ids and group names are checked here against `NAME` before they reach an AMI header,
whatever the caller already checked: a CR or LF there would smuggle in headers or whole actions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from agi_app.ami.client import AmiActionFailed, AmiClient, AmiError
from agi_app.ami.events import member_from_headers
from agi_app.centre.queues import QueueEntry, QueueMember, QueueSnapshot, QueueStateUnavailable

QUEUE_PREFIX = "hotline-"
AGENT_TECH = "PJSIP/"
#: An agent id or a group name: what may appear in an interface or a queue name.
NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


class InvalidName(ValueError):
    """An agent id or group name that could not safely go into an AMI header."""


def checked(kind: str, value: str) -> str:
    if not NAME.fullmatch(value):
        raise InvalidName(f"{kind} {value!r} refused: use 1-40 letters, digits, '-' or '_'")
    return value


def asterisk_queue(group: str) -> str:
    return QUEUE_PREFIX + checked("group", group)


def group_of(queue: str) -> str | None:
    """The group of an Asterisk queue name, None for a queue that is not the hotline's."""
    return queue[len(QUEUE_PREFIX):] if queue.startswith(QUEUE_PREFIX) and len(queue) > len(QUEUE_PREFIX) else None


def agent_interface(agent_id: str) -> str:
    return AGENT_TECH + checked("agent id", agent_id)


def agent_of(interface: str) -> str:
    """The agent id of a member interface (the interface itself for non-agent members, e.g. Local/...)."""
    return interface[len(AGENT_TECH):] if interface.startswith(AGENT_TECH) else interface


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


@dataclass
class _Building:
    params: Mapping[str, str]
    members: list[QueueMember] = field(default_factory=list)
    entries: list[QueueEntry] = field(default_factory=list)

    def snapshot(self, group: str) -> QueueSnapshot:
        p = self.params
        return QueueSnapshot(
            queue=group, members=tuple(self.members),
            entries=tuple(sorted(self.entries, key=lambda e: e.position)),
            asterisk_holdtime_s=_int(p.get("Holdtime")), asterisk_talktime_s=_int(p.get("TalkTime")),
            completed=_int(p.get("Completed")), abandoned=_int(p.get("Abandoned")),
            extra={k: p[k] for k in ("Strategy", "Max", "ServiceLevel", "ServicelevelPerf", "Weight") if k in p})


async def queue_status(ami: AmiClient, group: str | None = None, *,
                       timeout: float | None = None) -> dict[str, QueueSnapshot]:
    """Every hotline queue (or one group's) now, by group; a group Asterisk does not know is absent."""
    headers = {"Queue": asterisk_queue(group)} if group is not None else {}
    response = await ami.action("QueueStatus", headers, complete="QueueStatusComplete", timeout=timeout)
    building: dict[str, _Building] = {}
    for event in response.events:
        queue_group = group_of(event.get("Queue", ""))
        if queue_group is None:
            continue
        name = event.get("Event")
        if name == "QueueParams":
            building[queue_group] = _Building(event)
        elif queue_group in building and name == "QueueMember":
            building[queue_group].members.append(member_from_headers(event))
        elif queue_group in building and name == "QueueEntry":
            building[queue_group].entries.append(QueueEntry(
                position=_int(event.get("Position")), channel=event.get("Channel", ""),
                unique_id=event.get("Uniqueid", ""), wait_s=_int(event.get("Wait"))))
    return {g: b.snapshot(g) for g, b in building.items()}


class AmiQueueState:
    """`agi_app.centre.queues.QueueState` read from AMI QueueStatus: `snapshot("general")` is the queue
    `hotline-general` now. Down, slow (past the AMI action budget, or `timeout`) or unknown to Asterisk:
    QueueStateUnavailable, so the caller is transferred without an announcement, never held back."""

    def __init__(self, ami: AmiClient, *, timeout: float | None = None) -> None:
        self._ami = ami
        self._timeout = timeout

    async def snapshot(self, queue: str) -> QueueSnapshot:
        try:
            snapshots = await queue_status(self._ami, queue, timeout=self._timeout)
        except (AmiError, ValueError) as exc:
            raise QueueStateUnavailable(f"queue {queue!r}: {exc}") from exc
        if queue not in snapshots:
            raise QueueStateUnavailable(f"queue {queue!r}: Asterisk has no queue {QUEUE_PREFIX}{queue}")
        return snapshots[queue]


# --- agents ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentInQueue:
    """One agent's membership of one queue, as `hotline agents list` shows it."""

    agent: str
    group: str
    status: str
    paused: bool
    calls_taken: int
    in_call: bool

    @classmethod
    def of(cls, group: str, member: QueueMember) -> AgentInQueue:
        return cls(agent_of(member.interface), group, member.status, member.paused, member.calls_taken,
                   member.in_call)


@dataclass(frozen=True)
class AgentChange:
    """What one queue did with an agent action: `changed` False when it was so already (logged in twice,
    logged out of a queue it was not in)."""

    group: str
    changed: bool
    message: str


class NotLoggedIn(AmiError):
    """QueuePause for an agent that is in no queue."""


async def agents(ami: AmiClient) -> list[AgentInQueue]:
    """Every member of every hotline queue, by group then agent."""
    snapshots = await queue_status(ami)
    return sorted((AgentInQueue.of(group, m) for group, snap in snapshots.items() for m in snap.members),
                  key=lambda a: (a.group, a.agent))


async def login(ami: AmiClient, agent_id: str, groups: Iterable[str], *, penalty: int | None = None,
                name: str | None = None) -> list[AgentChange]:
    """Add the agent to each group's queue (QueueAdd), its device state from the same interface."""
    interface = agent_interface(agent_id)
    headers = {"Interface": interface, "StateInterface": interface,
               "MemberName": checked("agent name", name or agent_id)}
    if penalty is not None:
        headers["Penalty"] = str(int(penalty))
    changes = []
    for group in groups:
        try:
            answer = await ami.action("QueueAdd", {"Queue": asterisk_queue(group), **headers})
            changes.append(AgentChange(group, True, answer.message))
        except AmiActionFailed as exc:
            if not exc.message.endswith("Already there"):
                raise
            changes.append(AgentChange(group, False, exc.message))
    return changes


async def logout(ami: AmiClient, agent_id: str, groups: Sequence[str] | None = None) -> list[AgentChange]:
    """Remove the agent from these groups' queues (QueueRemove); None: from every queue it is in."""
    interface = agent_interface(agent_id)
    if groups is None:
        groups = [a.group for a in await agents(ami) if a.agent == agent_id]
    changes = []
    for group in groups:
        try:
            answer = await ami.action("QueueRemove", {"Queue": asterisk_queue(group), "Interface": interface})
            changes.append(AgentChange(group, True, answer.message))
        except AmiActionFailed as exc:
            if not exc.message.endswith("Not there"):
                raise
            changes.append(AgentChange(group, False, exc.message))
    return changes


async def pause(ami: AmiClient, agent_id: str, paused: bool, *, reason: str = "",
                group: str | None = None) -> str:
    """Pause (or unpause) the agent in every queue, or in one group's (QueuePause); the reason is shown
    by QueueStatus and the QueueMemberPause event. Raises NotLoggedIn when the agent is in no queue."""
    headers = {"Interface": agent_interface(agent_id), "Paused": "true" if paused else "false"}
    if group is not None:
        headers["Queue"] = asterisk_queue(group)
    if reason:
        headers["Reason"] = reason
    try:
        return (await ami.action("QueuePause", headers)).message
    except AmiActionFailed as exc:
        if exc.message == "Interface not found":
            raise NotLoggedIn(f"agent {agent_id} is not logged in to "
                              + (f"queue {group}" if group else "any queue")) from exc
        raise
