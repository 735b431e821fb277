"""The journeys of calls our application never ran, as Asterisk's dialplan writes them.

Two kinds of call pass only through the dialplan: a call that found no application (`Stasis`
failed: `hotline serve` was down, the fallback apologised and queued the caller) and a call on
line 95002, handled in plain dialplan with the FastAGI hooks. Neither has a session to write its
journey, so the dialplan writes one line per call when the caller's channel hangs up (a hangup
handler, `[hotline-dialplan-journey]` in dialplan/extensions.conf.j2), into a file of its own spool
folder — no database, no application needed — and `hotline serve` imports the file once it runs.

A line is `key=value` fields separated by `|`, the first `v=1`. Every value was filtered by the
dialplan to a safe alphabet (the caller number to digits and +), and holds no digit the caller
typed: only ids, the caller's number, times and what the queue said.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

#: How the call went through the dialplan: the fallback while no application was connected, or
#: line 95002's plain dialplan.
Way = Literal["fallback:app-down", "dialplan"]
WAYS: tuple[Way, ...] = get_args(Way)
#: How a queue leg ended, in `queue_legs.result`'s words.
LegResult = Literal["completed", "abandoned", "timeout", "failed"]
#: QUEUESTATUS values meaning the queue gave up on the caller (no one to answer, or too long).
_GAVE_UP = {"TIMEOUT": "timeout", "JOINEMPTY": "failed", "LEAVEEMPTY": "timeout", "JOINUNAVAIL": "failed",
            "LEAVEUNAVAIL": "timeout", "FULL": "failed", "CONTINUE": "timeout"}
_SAFE = re.compile(r"[A-Za-z0-9._:@+-]*")
_KNOWN = {"v", "id", "line", "way", "arrived", "ended", "caller", "customer", "segment", "language",
          "queue", "joined", "left", "status", "agent", "held", "talked"}
_MAX_LINE = 2000
SEPARATOR = "|"


class BadJourneyLine(ValueError):
    """A line that is not a journey this release understands (its reason, never its content)."""


@dataclass(frozen=True)
class DialplanQueueLeg:
    group: str
    joined_at: datetime | None
    ended_at: datetime
    agent: str | None
    wait_s: int | None
    talk_s: int | None
    result: LegResult

    @property
    def answered_at(self) -> datetime | None:
        if self.agent is None or self.joined_at is None or self.wait_s is None:
            return None
        return self.joined_at + timedelta(seconds=self.wait_s)


@dataclass(frozen=True)
class DialplanJourney:
    call_id: str
    line: str
    way: Way
    started_at: datetime
    ended_at: datetime
    caller: str
    customer_id: str | None
    segment: str | None
    language: str | None
    leg: DialplanQueueLeg | None

    @property
    def outcome(self) -> Literal["transferred", "abandoned"]:
        """Transferred once the caller reached an agent queue; abandoned if they hung up before."""
        return "transferred" if self.leg is not None else "abandoned"

    @property
    def transfer_target(self) -> str | None:
        """Where the dialplan sent the caller: the fallback, or line 95002's queue."""
        if self.leg is None:
            return None
        return self.way if self.way != "dialplan" else f"queue:{self.leg.group}"

    @property
    def duration_ms(self) -> int:
        return max(0, round((self.ended_at - self.started_at).total_seconds() * 1000))


def parse_line(line: str) -> DialplanJourney:
    """One journey from one line of the dialplan's file; `BadJourneyLine` says why not."""
    if len(line) > _MAX_LINE:
        raise BadJourneyLine("line too long")
    fields: dict[str, str] = {}
    for part in line.rstrip("\n").split(SEPARATOR):
        key, sep, value = part.partition("=")
        if not sep or not _SAFE.fullmatch(key) or not _SAFE.fullmatch(value):
            raise BadJourneyLine("not key=value fields in the dialplan's alphabet")
        if key in fields:
            raise BadJourneyLine(f"field {key} repeated")
        if key in _KNOWN:  # a later release's extra fields are left alone
            fields[key] = value
    if fields.get("v") != "1":
        raise BadJourneyLine("not a version 1 journey line")
    for required in ("id", "line", "way", "arrived", "ended"):
        if not fields.get(required):
            raise BadJourneyLine(f"field {required} missing")
    way = fields["way"]
    if way not in WAYS:
        raise BadJourneyLine(f"unknown way {way[:30]!r}")
    started, ended = _epoch(fields, "arrived"), _epoch(fields, "ended")
    if ended < started:
        raise BadJourneyLine("ended before it arrived")
    return DialplanJourney(
        call_id=fields["id"], line=fields["line"], way=way,  # type: ignore[arg-type]
        started_at=started, ended_at=ended, caller=fields.get("caller", ""),
        customer_id=fields.get("customer") or None, segment=fields.get("segment") or None,
        language=fields.get("language") or None, leg=_leg(fields, ended))


def _leg(fields: dict[str, str], ended: datetime) -> DialplanQueueLeg | None:
    """The agent-queue leg, if the caller reached a queue. app_queue's channel variables tell
    who answered (MEMBERNAME, set at the connection), after how long (QEHOLDTIME) and, when the
    agent hung up first, the talk (ANSWEREDTIME); the rest follows from the times. The leg ends
    when Queue() returned (`left`), or with the call if the caller hung up in it."""
    group = fields.get("queue")
    if not group:
        return None
    joined = _epoch(fields, "joined") if fields.get("joined") else None
    left = _epoch(fields, "left") if fields.get("left") else ended
    held, talked = _seconds(fields, "held"), _seconds(fields, "talked")
    agent = fields.get("agent") or None
    in_queue = max(0, round((left - joined).total_seconds())) if joined is not None else None
    if agent is not None:
        if talked is None and in_queue is not None and held is not None:
            talked = max(0, in_queue - held)
        return DialplanQueueLeg(group, joined, left, agent, held, talked, "completed")
    result: LegResult = _GAVE_UP.get(fields.get("status", ""), "abandoned")  # type: ignore[assignment]
    return DialplanQueueLeg(group, joined, left, None, in_queue, None, result)


def _epoch(fields: dict[str, str], key: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(fields[key]), UTC)
    except (ValueError, OverflowError, OSError):
        raise BadJourneyLine(f"field {key} is not a time") from None


def _seconds(fields: dict[str, str], key: str) -> int | None:
    value = fields.get(key, "")
    if not value:
        return None
    if not value.isdigit():
        raise BadJourneyLine(f"field {key} is not a number of seconds")
    return int(value)
