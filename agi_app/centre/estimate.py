"""How long a caller joining a queue now will wait: ours, and what Asterisk would say. Pure.

Ours is the queue-length estimator (Ibrahim & Whitt, "Real-time delay estimation in overloaded
multiserver queues", 2009): a caller who finds every agent busy and k callers ahead is served at
the (k+1)-th time an agent comes free. With n agents working and a mean handle time (AHT: talk +
wrap-up), agents come free n/AHT times per unit of time on average, so the expected wait is
(k+1)/n × AHT. We use that, not ceil((k+1)/n) × AHT: the ceiling assumes every agent started their
current call at the same moment (it is the worst case, at the start of a shift), while in a busy
queue the calls in progress are staggered — with exponential handle times exactly (k+1)/n × AHT,
and close to it otherwise. Agents free right now take callers at once: those callers wait nothing,
and only the ones beyond them count. n counts agents logged in and not paused (busy ones too: they
will be free again); with none there is no number to give, and we say so rather than invent one.
Callers already told about the queue but still hearing their announcement are not in app_queue's
list yet, yet they will be ahead: they count too (`in_flight`) — in a burst of calls, a few seconds
of announcement would otherwise hide several callers.

AHT is the mean talk time of the group's recently completed calls (its last completed queue legs),
else app_queue's own average talk time (QueueParams TalkTime) — either plus the queues' wrap-up
time — else a configured default.

Asterisk's `announce-holdtime` is kept beside it for comparison (recorded per leg): app_queue keeps
one number per queue, `holdtime`, updated only when a call is answered, as the exponential average
holdtime = (3·old + new)/4 (new: that caller's wait; integer arithmetic), and announces
(holdtime + 30 − waited)/60 whole minutes — the same for every position in the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agi_app.centre.queues import QueueMember, QueueSnapshot

#: Device states in which app_queue rings an unpaused member (num_available_members): free now.
_FREE_STATUSES = frozenset({"available", "not_in_use", "unknown"})


@dataclass(frozen=True)
class WaitEstimate:
    """What a caller joining the queue now may expect."""

    position: int  # 1 = next
    agents: int  # logged in and not paused
    free: int  # of those, free for a call right now
    handle_s: float  # the mean handle time used
    #: Seconds; 0 when an agent is free for this caller; None with no agent working.
    wait_s: int | None
    #: Asterisk's announce-holdtime figure, seconds (its queue-wide `holdtime`).
    asterisk_wait_s: int


def is_free(member: QueueMember) -> bool:
    return member.logged_in_and_unpaused and not member.in_call and member.status in _FREE_STATUSES


def mean_handle_time(recent_talk_s: Sequence[float], *, talktime_s: int, wrapup_s: float = 0,
                     default_s: float) -> float:
    """The mean talk time of recently completed calls, else Asterisk's average talk time — either
    plus the wrap-up an agent takes after each call — else `default_s` (a whole handle time)."""
    usable = [s for s in recent_talk_s if s >= 0]
    if usable:
        return sum(usable) / len(usable) + wrapup_s
    return talktime_s + wrapup_s if talktime_s > 0 else default_s


def estimate_wait(snapshot: QueueSnapshot, handle_s: float, *, in_flight: int = 0) -> WaitEstimate:
    """The queue-length estimate for a caller joining `snapshot`'s queue now, after the `in_flight`
    callers on their way into it."""
    position = snapshot.waiting + in_flight + 1
    agents = snapshot.agents_available
    free = sum(1 for m in snapshot.members if is_free(m))
    if agents == 0:
        wait_s: int | None = None
    elif position <= free:
        wait_s = 0
    else:
        wait_s = round((position - free) / agents * handle_s)
    return WaitEstimate(position, agents, free, handle_s, wait_s, snapshot.asterisk_holdtime_s)

