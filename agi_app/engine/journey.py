"""A call's journey — nodes visited, inputs (secure ones masked, rejected keys without their
value), services, outcome — recorded as it happens through a `JourneySink`, so a crash or hangup
mid-call still leaves a trace.

The engine only talks to the sink protocol; the PostgreSQL writer and the in-memory sink used by
`simulate` and tests implement it. How a call ended becomes its outcome in one place:
`lifecycle.outcome`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from agi_app.flows.services import ServiceResult
from agi_app.flows.survey import NoAnswer
from agi_app.secure import SecretDigits, shown_input

Outcome = Literal["self_service", "transferred", "abandoned", "hangup", "error"]


@dataclass(frozen=True)
class SurveyContext:
    """What a survey answer rates: the self-service part of a call, or the agent (`agent`, member
    of skill group `queue`) who just talked to the caller."""

    kind: Literal["after_self_service", "after_agent"] = "after_self_service"
    queue: str | None = None
    agent: str | None = None


SELF_SERVICE = SurveyContext()


@dataclass(frozen=True)
class QueueLeg:
    """The first half of a `queue_legs` row, ours at transfer: the skill group, what the caller was
    told (position; our wait estimate in seconds, before rounding to minutes — 0 when an agent was
    free and nothing was said; both None when live state was not there) and Asterisk's own
    estimate. The AMI queue tracker completes the row (joined, answered, agent, waited, talked)."""

    queue: str
    announced_position: int | None
    announced_wait_s: int | None
    asterisk_wait_s: int | None
    result: str  # "waiting" (handed to the queue) or "callback" (took a callback instead)


@dataclass
class JourneyRecord:
    """What the call did, as stored (`calls` and its child rows); the session's `Arrival` is what
    the network said when it came in."""

    call_id: str
    caller: str
    dnis: str
    started_at: datetime
    customer_id: str | None = None
    segment: str | None = None
    language: str | None = None
    menu_version: int | None = None
    path: list[str] = field(default_factory=list)
    services: list[tuple[str, ServiceResult]] = field(default_factory=list)
    outcome: Outcome | None = None
    transfer_target: str | None = None
    queue_legs: list[QueueLeg] = field(default_factory=list)
    duration_ms: int | None = None


class JourneySink(Protocol):
    def call_started(self, record: JourneyRecord) -> None: ...
    def call_identified(self, record: JourneyRecord) -> None: ...
    def node_entered(self, call_id: str, seq: int, node_id: str, at: datetime) -> None: ...
    def node_input(self, call_id: str, seq: int, node_seq: int, masked_input: str, result: str) -> None: ...
    def service_reached(self, call_id: str, seq: int, service: str, result: ServiceResult) -> None: ...
    def survey_answer(self, call_id: str, node_id: str, score: int | None, *, no_answer: NoAnswer | None = None,
                      context: SurveyContext = SELF_SERVICE) -> None:
        """A survey's result: `score` 1–5, or None with the reason (`no_answer`)."""
    def queue_leg(self, call_id: str, leg: QueueLeg) -> None: ...
    def call_ended(self, record: JourneyRecord, ended_at: datetime) -> None: ...


class Journey:
    """The recorder one call uses; every method is synchronous and never blocks the call."""

    def __init__(self, record: JourneyRecord, sink: JourneySink) -> None:
        self.record = record
        self._sink = sink
        self._t0 = time.monotonic()
        self._ended = False
        self._inputs = 0
        sink.call_started(record)

    def identified(self, *, customer_id: str | None, segment: str | None, language: str | None,
                   menu_version: int | None) -> None:
        r = self.record
        r.customer_id, r.segment, r.language, r.menu_version = customer_id, segment, language, menu_version
        self._sink.call_identified(r)

    def node(self, node_id: str) -> None:
        self.record.path.append(node_id)
        self._sink.node_entered(self.record.call_id, len(self.record.path), node_id, datetime.now(UTC))

    def input(self, value: str | SecretDigits, result: str) -> str:
        """Record input at the current node; returns the text recorded, the same a log line may show
        (`shown_input`: secure input masked, a rejected key without its value)."""
        shown = shown_input(value, result)
        self._inputs += 1
        self._sink.node_input(self.record.call_id, self._inputs, len(self.record.path), shown, result)
        return shown

    def service(self, service: str, result: ServiceResult) -> None:
        self.record.services.append((service, result))
        self._sink.service_reached(self.record.call_id, len(self.record.services), service, result)

    def survey(self, node_id: str, score: int | None, no_answer: NoAnswer | None = None) -> None:
        self._sink.survey_answer(self.record.call_id, node_id, score, no_answer=no_answer)

    def queue_leg(self, group: str, *, announced_position: int | None, announced_wait_s: int | None,
                  asterisk_wait_s: int | None, result: str) -> None:
        leg = QueueLeg(group, announced_position, announced_wait_s, asterisk_wait_s, result)
        self.record.queue_legs.append(leg)
        self._sink.queue_leg(self.record.call_id, leg)

    def transferred(self, target: str) -> None:
        self.record.transfer_target = target

    @property
    def ended(self) -> bool:
        return self._ended

    def end(self, outcome: Outcome) -> None:
        if self._ended:
            return
        self._ended = True
        self.record.outcome = outcome
        self.record.duration_ms = int((time.monotonic() - self._t0) * 1000)
        self._sink.call_ended(self.record, datetime.now(UTC))


class MemorySink:
    """Keeps journeys in memory: for `hotline simulate`, previews and tests of the engine alone."""

    def __init__(self) -> None:
        self.calls: dict[str, JourneyRecord] = {}
        self.inputs: list[tuple[str, int, str, str]] = []  # (call id, node seq, input, result)
        self.surveys: list[tuple[str, str, int | None]] = []
        self.survey_details: list[tuple[NoAnswer | None, SurveyContext]] = []  # beside `surveys`, in order

    def call_started(self, record: JourneyRecord) -> None:
        self.calls[record.call_id] = record

    def call_identified(self, record: JourneyRecord) -> None:
        pass

    def node_entered(self, call_id: str, seq: int, node_id: str, at: datetime) -> None:
        pass

    def node_input(self, call_id: str, seq: int, node_seq: int, masked_input: str, result: str) -> None:
        self.inputs.append((call_id, node_seq, masked_input, result))

    def service_reached(self, call_id: str, seq: int, service: str, result: ServiceResult) -> None:
        pass

    def survey_answer(self, call_id: str, node_id: str, score: int | None, *, no_answer: NoAnswer | None = None,
                      context: SurveyContext = SELF_SERVICE) -> None:
        self.surveys.append((call_id, node_id, score))
        self.survey_details.append((no_answer, context))

    def queue_leg(self, call_id: str, leg: QueueLeg) -> None:
        pass  # kept on the record

    def call_ended(self, record: JourneyRecord, ended_at: datetime) -> None:
        pass
