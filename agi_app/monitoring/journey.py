"""Calls counted as their journeys are recorded: a `JourneySink` that hands every record on to the
real writer, then counts it.

The engine already reports everything a call does to its sink, so metrics need no hook of their own
in it: the server gives the registry this sink in front of the PostgreSQL writer. The writer comes
first: a journey is stored whatever happens to a count.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from agi_app.engine.journey import SELF_SERVICE, JourneyRecord, JourneySink, QueueLeg, SurveyContext
from agi_app.flows.services import ServiceResult
from agi_app.flows.survey import NoAnswer
from agi_app.monitoring.live import LiveView
from agi_app.monitoring.metrics import OTHER_LINE, HotlineMetrics

#: The input results (`Journey.input`) that are DTMF errors: a key no option has, or no key in time.
DTMF_ERRORS = frozenset({"invalid", "timeout"})


class MeteredJourneySink:
    """Forwards everything to `inner`; counts ended calls by line and outcome, nodes, services, DTMF
    errors, surveys and hand-offs to agent queues; and keeps `live` (the calls in progress, for the
    monitor and the wallboard) up to date from the same records.

    `known_lines` are the lines of the menus in use: a call to any other number is counted under
    `other`, so whoever controls the dialled number cannot grow the metrics without bound.
    """

    def __init__(self, inner: JourneySink, metrics: HotlineMetrics, known_lines: Callable[[], Collection[str]],
                 live: LiveView | None = None) -> None:
        self._inner = inner
        self._metrics = metrics
        self._known_lines = known_lines
        self.live = live or LiveView()

    def call_started(self, record: JourneyRecord) -> None:
        self._inner.call_started(record)
        self.live.started(record.call_id, record.caller, record.dnis, record.started_at)

    def call_identified(self, record: JourneyRecord) -> None:
        self._inner.call_identified(record)

    def node_entered(self, call_id: str, seq: int, node_id: str, at: datetime) -> None:
        self._inner.node_entered(call_id, seq, node_id, at)
        self._metrics.node_visits.labels(node=node_id).inc()
        self.live.entered(call_id, node_id, at)

    def node_input(self, call_id: str, seq: int, node_seq: int, masked_input: str, result: str) -> None:
        self._inner.node_input(call_id, seq, node_seq, masked_input, result)
        if result in DTMF_ERRORS:
            self._metrics.dtmf_errors.labels(kind=result).inc()
        self.live.activity(call_id, f"key: {result}")

    def service_reached(self, call_id: str, seq: int, service: str, result: ServiceResult) -> None:
        self._inner.service_reached(call_id, seq, service, result)
        self._metrics.service_results.labels(service=service, result=result).inc()
        self.live.service(call_id, service, result)

    def survey_answer(self, call_id: str, node_id: str, score: int | None, *, no_answer: NoAnswer | None = None,
                      context: SurveyContext = SELF_SERVICE) -> None:
        self._inner.survey_answer(call_id, node_id, score, no_answer=no_answer, context=context)
        self._metrics.survey_answers.labels(score=str(score) if score is not None else "none").inc()

    def queue_leg(self, call_id: str, leg: QueueLeg) -> None:
        self._inner.queue_leg(call_id, leg)
        self._metrics.queue_handoffs.labels(queue=leg.queue, result=leg.result).inc()
        self.live.queued(call_id, leg.queue, leg.result)

    def call_ended(self, record: JourneyRecord, ended_at: datetime) -> None:
        self._inner.call_ended(record, ended_at)
        line = record.dnis if record.dnis in self._known_lines() else OTHER_LINE
        self._metrics.calls.labels(line=line, outcome=record.outcome or "error").inc()
        self.live.ended(record.call_id)
