"""What happened to a caller in an agent queue: the facts the queue tracker writes on its leg.

app_queue tells the story of each caller (identified by the caller channel's id — our call id)
in events: the caller joined; an agent answered (who, after how long); they finished (how long
they talked); or the caller hung up waiting (abandoned). app_queue also says the caller *left*
whenever it leaves the queue — answered too, and before saying who answered — so a leave means the
queue gave up (timeout) only until an answer says otherwise. A leg is keyed by the call and the
skill group (`queue_legs.queue` holds the group, as the transfer writes it); queue `hotline-<group>`
serves group <group>.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

LegKind = Literal["join", "connect", "complete", "abandon", "leave"]

#: The prefix of our agent queues: queue `hotline-<group>` serves skill group <group>.
QUEUE_PREFIX = "hotline-"


@dataclass(frozen=True)
class LegEvent:
    kind: LegKind
    call_id: str
    group: str
    at: datetime
    agent: str | None = None
    wait_s: int | None = None
    talk_s: int | None = None
    #: The recording of the talk (`centre.qa.recording_name`), known when an agent is connected.
    recording: str | None = None


def queue_name(group: str) -> str:
    return QUEUE_PREFIX + group


def group_of(queue: str) -> str | None:
    """The skill group one of our queues serves; None for any other queue."""
    group = queue[len(QUEUE_PREFIX):] if queue.startswith(QUEUE_PREFIX) else ""
    return group or None
