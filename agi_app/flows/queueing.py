"""Sending a caller to an agent queue: which skill group, and what the caller hears before it.

`queue_for` is the one routing rule (the IVR runner and the FastAGI `route` hook both use it): a
queue destination's first rule whose `if` holds for the caller, else its default group — the
same condition language as `condition` nodes. `QueueDesk` is what the runner needs of the
contact centre (live advice on a group, booking a callback); the centre implements it
(`agi_app.centre.advisor`), so the flows never see AMI or the database. `announcement` composes
the position and wait from recorded prompts in the caller's language.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from agi_app.directory.phone import normalize_phone
from agi_app.flows.context import FlowContext, matches
from agi_app.flows.model import AGENTS_CONTEXT, Destination
from agi_app.flows.saying import say_number
from agi_app.media.items import MediaItem, Sound

#: The key that accepts a callback offer (the callback_offer prompt says "press 1").
CALLBACK_KEY = "1"
#: Said with the prompt of every queue transfer: agent calls are recorded (agi_app/centre/qa.py).
#: Before the hand-over, not in the dialplan: the call still counts as on its way into the queue.
RECORDING_NOTICE = "recording_notice"


@dataclass(frozen=True)
class DialTarget:
    """Where a transfer to a destination goes for this caller: the dialplan place, and the skill
    group when the destination is an agent queue."""

    destination: str
    context: str
    extension: str
    group: str | None = None


def queue_for(destination: Destination, ctx: FlowContext) -> str | None:
    """The skill group for this caller: the first rule that holds, else the default; None for a
    fixed dialplan destination."""
    if destination.queue is None:
        return None
    for rule in destination.rules:
        if matches(rule.when, ctx):
            return rule.queue
    return destination.queue


def dial_target(destination: Destination, ctx: FlowContext) -> DialTarget:
    group = queue_for(destination, ctx)
    if group is None:
        assert destination.extension is not None  # the schema requires it for a fixed place
        return DialTarget(destination.name, destination.context, destination.extension)
    return DialTarget(destination.name, AGENTS_CONTEXT, group, group)


@dataclass(frozen=True)
class QueueAdvice:
    """What the caller would meet joining a group now."""

    #: The caller's place on joining (1 = next); callers ahead = position - 1.
    position: int
    #: Our estimate of the wait, seconds; 0 when an agent is free now; None when no agent is logged
    #: in and unpaused (there is no honest number to give).
    wait_s: int | None
    #: What Asterisk's announce-holdtime would say (its queue-wide average), kept to compare.
    asterisk_wait_s: int | None = None

    @property
    def ahead(self) -> int:
        return self.position - 1

    @property
    def immediate(self) -> bool:
        """An agent is free for this caller now: nothing worth announcing."""
        return self.wait_s == 0

    @property
    def wait_minutes(self) -> int | None:
        """The wait as announced: whole minutes, rounded up, at least 1 (a caller told "zero
        minutes" who then waits is a caller misled)."""
        return None if self.wait_s is None else max(1, math.ceil(self.wait_s / 60))


class QueueAdviceUnavailable(Exception):
    """Live queue state could not be had in time: the caller is transferred without an announcement."""


class QueueDesk(Protocol):
    """The contact centre, as a flow sees it before a queue transfer."""

    @property
    def offers_callbacks(self) -> bool:
        """Whether callbacks can be booked at all (no offer is made otherwise)."""

    @property
    def callback_offer_wait_s(self) -> int:
        """Offer a callback when the estimated wait exceeds this (a destination may say otherwise)."""

    @property
    def callback_key_timeout_s(self) -> float:
        """How long the caller has to press the callback key once the offer has been played."""

    async def advise(self, call_id: str, group: str) -> QueueAdvice:
        """The group now for this call, within the desk's own time budget; QueueAdviceUnavailable
        otherwise. Until `forget`, the call counts as on its way into the group."""

    def forget(self, call_id: str, group: str) -> None:
        """The call advised on `group` was handed to it, took a callback, or ended."""

    async def book_callback(self, call_id: str, customer_id: str | None, number: str, group: str) -> bool:
        """Book a callback keeping the caller's place in `group`; False if it could not be booked."""


def should_offer_callback(advice: QueueAdvice, threshold_s: int) -> bool:
    """Above the threshold, or with no agent to give a number for: a callback beats waiting blind."""
    return advice.wait_s is None or advice.wait_s > threshold_s


def callback_number(caller: str) -> str | None:
    """The number a callback would dial: the calling number, normalised, when it is a national one
    (digits only); None for a withheld, invalid or international number — no callback is offered."""
    number = normalize_phone(caller)
    return number if number is not None and number.isdigit() else None


def announcement(advice: QueueAdvice, language: str) -> list[MediaItem]:
    """"There are <n> callers ahead of you" (or "you are next"), then "your estimated waiting time
    is <m> minutes" — or, with no agent available, that no agent is available now."""
    items: list[MediaItem] = []
    if advice.ahead == 0:
        items.append(Sound("queue_next", language))
    else:
        items += [Sound("queue_position_before", language), *_count(advice.ahead, language),
                  Sound("queue_position_after", language)]
    minutes = advice.wait_minutes
    if minutes is None:
        items.append(Sound("queue_no_agents", language))
    else:
        items += [Sound("estimated_wait_before", language), *_count(minutes, language),
                  Sound("estimated_wait_after", language)]
    return items


def _count(n: int, language: str) -> list[MediaItem]:
    """A count before a measure word: Mandarin says 两位 / 两分钟 for exactly two, not 二."""
    ids = ["digits/liang"] if language == "zh" and n == 2 else say_number(n, language)
    return [Sound(sound_id, language) for sound_id in ids]
