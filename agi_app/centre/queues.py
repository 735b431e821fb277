"""What a queue looks like right now, as the contact centre needs it: who is waiting, which agents
are logged in and free, Asterisk's own statistics. The AMI adapter (`agi_app.ami`) builds these
from QueueStatus; everything above reads them through `QueueState`, so it can be tested without
Asterisk and never sees the wire protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class QueueStateUnavailable(Exception):
    """Live queue state could not be read in time (AMI down, slow, or the queue unknown).
    Callers are then transferred without an announcement, never held back."""


@dataclass(frozen=True)
class QueueMember:
    """An agent logged in to a queue."""

    interface: str  # e.g. PJSIP/agent-1001
    name: str
    paused: bool = False
    in_call: bool = False
    #: app_queue's device status: available / not_in_use, in_use, busy, ringing, unavailable,
    #: invalid, unknown (lower case, from the numeric AMI `Status`).
    status: str = "unknown"
    calls_taken: int = 0

    @property
    def logged_in_and_unpaused(self) -> bool:
        return not self.paused and self.status not in ("unavailable", "invalid")


@dataclass(frozen=True)
class QueueEntry:
    """A caller waiting in the queue (position 1 is next)."""

    position: int
    channel: str
    unique_id: str
    wait_s: int


@dataclass(frozen=True)
class QueueSnapshot:
    queue: str
    members: tuple[QueueMember, ...] = ()
    entries: tuple[QueueEntry, ...] = ()
    #: Asterisk's `announce-holdtime` estimate (QueueParams `Holdtime`, seconds): one exponential
    #: average for the whole queue, updated only when a call is answered. Kept to compare against.
    asterisk_holdtime_s: int = 0
    #: QueueParams `TalkTime`: app_queue's average talk time, seconds.
    asterisk_talktime_s: int = 0
    completed: int = 0
    abandoned: int = 0
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def waiting(self) -> int:
        return len(self.entries)

    @property
    def agents_available(self) -> int:
        """Logged in and not paused (busy with a call still counts: it will be free again)."""
        return sum(1 for m in self.members if m.logged_in_and_unpaused)


class QueueState(Protocol):
    """Live queue state, each read within its own time budget."""

    async def snapshot(self, queue: str) -> QueueSnapshot:
        """The queue now; raises QueueStateUnavailable when it cannot be read in time."""
        ...
