"""Outbound campaigns: the rules, with no I/O.

A department creates a campaign (a message, a customer list, allowed hours); an administrator
who is not its creator approves it; it is then started, paused, started again, and finishes when
every customer has been reached or has used their attempts. It dials only while the allowed hours
hold in the bank's time zone on a day the business calendar opens, at most `MAX_ATTEMPTS` times
per customer with `retry_delay` between attempts, and never more than `concurrency` calls at once.

An attempt's channel id names the target and the attempt (`AttemptLeg`), so the server that
hears an ARI event finds the attempt it belongs to from the id alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum

from agi_app.calendar.model import Calendar, format_time, parse_time

#: At most this many attempts per customer (SPEC "Call handling" 10).
MAX_ATTEMPTS = 3
#: StasisStart's first argument for an answered campaign call.
CAMPAIGN_ARG = "campaign"
MAX_CONCURRENCY = 50

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
_LEG = re.compile(r"campaign-(\d{1,18})-(\d{1,2})")


class CampaignError(ValueError):
    """A campaign request the rules refuse; the message says why."""


class State(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"


class Result(StrEnum):
    """What one attempt came to: `dialling` until Asterisk says."""

    DIALLING = "dialling"
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"


#: The moves an administrator may make, by verb: (states it may leave, state it enters).
MOVES: dict[str, tuple[frozenset[State], State]] = {
    "approve": (frozenset({State.DRAFT}), State.APPROVED),
    "start": (frozenset({State.APPROVED, State.PAUSED}), State.RUNNING),
    "pause": (frozenset({State.RUNNING}), State.PAUSED),
}


def check_name(name: str) -> str:
    """A campaign name safe in logs and channel variables: lower-case letters, digits, - and _."""
    if not _NAME.fullmatch(name):
        raise CampaignError(f"bad campaign name {name!r} (lower-case letters, digits, - and _, at most 48)")
    return name


def move(verb: str, current: State) -> State:
    """The state `verb` leads to from `current`, or CampaignError naming what is allowed."""
    allowed, target = MOVES[verb]
    if current not in allowed:
        raise CampaignError(f"cannot {verb} a {current} campaign (only {', '.join(sorted(allowed))})")
    return target


def check_approver(creator: str, approver: str) -> None:
    """Four eyes: whoever created a campaign may not approve it."""
    if not approver.strip():
        raise CampaignError("an approval needs an actor")
    if approver.strip().casefold() == creator.strip().casefold():
        raise CampaignError(f"{approver} created this campaign: another administrator must approve it")


@dataclass(frozen=True)
class Hours:
    """The daily window a campaign may dial in, local wall-clock time; `ends` is exclusive.
    A window never crosses midnight (write two campaigns for an overnight one)."""

    starts: time
    ends: time

    @classmethod
    def parse(cls, text: str) -> Hours:
        first, sep, last = text.partition("-")
        if not sep:
            raise CampaignError(f"bad hours {text!r} (expected HH:MM-HH:MM, e.g. 09:00-18:00)")
        try:
            hours = cls(parse_time(first), parse_time(last))
        except ValueError as exc:
            raise CampaignError(str(exc)) from None
        if not hours.ends > hours.starts:
            raise CampaignError(f"bad hours {text!r}: the window ends before it starts")
        return hours

    def __str__(self) -> str:
        return f"{format_time(self.starts)}-{format_time(self.ends)}"

    def holds(self, wall: time) -> bool:
        return self.starts <= wall < self.ends


def may_dial(at: datetime, hours: Hours, calendar: Calendar) -> bool:
    """Whether a campaign with these hours may dial at the instant `at`: inside its hours in the
    calendar's (the bank's) time zone, on a day the calendar opens (not a holiday, not closed)."""
    if at.tzinfo is None:
        raise ValueError("may_dial needs a timezone-aware datetime")
    local = at.astimezone(calendar.tz)
    return calendar.hours_on(local.date()).kind == "open" and hours.holds(local.time().replace(tzinfo=None))


def check_concurrency(value: int) -> int:
    if not 1 <= value <= MAX_CONCURRENCY:
        raise CampaignError(f"concurrency {value} is not between 1 and {MAX_CONCURRENCY}")
    return value


def free_lines(concurrency: int, in_flight: int) -> int:
    """How many more calls may start now."""
    return max(0, concurrency - in_flight)


@dataclass(frozen=True)
class AfterAttempt:
    """Where an ended attempt leaves its customer: `done` (reached, or attempts used up), else
    due again after `retry_delay`."""

    done: bool
    due_in: timedelta


def after_attempt(attempts: int, result: Result, retry_delay: timedelta) -> AfterAttempt:
    """`attempts` counts the one that just ended."""
    if result == Result.DIALLING:
        raise ValueError("an attempt still dialling has not ended")
    if result == Result.ANSWERED or attempts >= MAX_ATTEMPTS:
        return AfterAttempt(True, timedelta(0))
    return AfterAttempt(False, retry_delay)


@dataclass(frozen=True)
class AttemptLeg:
    """The channel of one attempt to one campaign target."""

    target_id: int
    attempt: int

    @property
    def channel_id(self) -> str:
        return f"campaign-{self.target_id}-{self.attempt}"

    @property
    def playback_id(self) -> str:
        return f"{self.channel_id}-message"

    @classmethod
    def parse(cls, channel_id: str) -> AttemptLeg | None:
        found = _LEG.fullmatch(channel_id)
        return cls(int(found[1]), int(found[2])) if found else None
