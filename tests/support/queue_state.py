"""Live queue state for tests of what callers hear before a queue transfer: snapshots built from
agents and waiting callers, and the `QueueState` port answering with one, down, or never."""

from __future__ import annotations

import asyncio

from agi_app.centre.queues import QueueEntry, QueueMember, QueueSnapshot, QueueStateUnavailable


def agent(n: int, *, busy: bool = False, paused: bool = False, status: str | None = None) -> QueueMember:
    return QueueMember(f"PJSIP/agent-{n}", f"agent-{n}", paused=paused, in_call=busy,
                       status=status or ("in_use" if busy else "not_in_use"))


def snapshot(*members: QueueMember, waiting: int = 0, holdtime: int = 0, talktime: int = 0,
             queue: str = "cards") -> QueueSnapshot:
    entries = tuple(QueueEntry(i, f"PJSIP/c-{i}", f"id-{i}", 10 * i) for i in range(1, waiting + 1))
    return QueueSnapshot(queue, members, entries, asterisk_holdtime_s=holdtime, asterisk_talktime_s=talktime)


class StubState:
    """The live queue state port: a given snapshot for any queue, an outage, or no answer ever."""

    def __init__(self, snap: QueueSnapshot | None = None, *, down: bool = False, hang: bool = False) -> None:
        self.snap, self.down, self.hang = snap, down, hang
        self.asked: list[str] = []

    async def snapshot(self, queue: str) -> QueueSnapshot:
        self.asked.append(queue)
        if self.hang:
            await asyncio.Event().wait()
        if self.down or self.snap is None:
            raise QueueStateUnavailable(f"queue {queue!r}: AMI not connected")
        return self.snap
