"""Alerts of one `hotline serve`: the rules of agi_app/analytics/alerts.py fed from the journey tee
(`AlertingJourneySink`, in front of the metered sink: the same records, no hook in the engine) and,
every HOTLINE_ALERT_EVAL_MS, from the metrics the server already keeps (ARI connection, journey
backlog, lookups past their budget). Each change is one log line and one `alert_events` row.

A row that cannot be written within the database budget (PostgreSQL down: an alert of its own kind)
is kept, at most `PENDING_MAX`, and written with the next ones; the log line is never delayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from agi_app.analytics.alerts import AlertEvent, AlertRules, Band, Thresholds
from agi_app.budget import within
from agi_app.config import Settings
from agi_app.engine.journey import SELF_SERVICE, JourneyRecord, JourneySink, QueueLeg, SurveyContext
from agi_app.flows.services import ServiceResult
from agi_app.flows.survey import NoAnswer
from agi_app.logs import log_event
from agi_app.monitoring import alert_store as repo
from agi_app.monitoring.metrics import HotlineMetrics

log = logging.getLogger("hotline.alerts")
#: Unwritten alert rows kept while PostgreSQL does not answer (the oldest go first).
PENDING_MAX = 1000


def thresholds(settings: Settings) -> Thresholds:
    """The rules' thresholds from HOTLINE_ALERT_* settings."""
    s = settings
    return Thresholds(window_s=s.alert_window_s,
                      error_rate=Band(s.alert_error_rate_warning_pct / 100, s.alert_error_rate_critical_pct / 100),
                      min_calls=s.alert_min_calls,
                      consecutive=Band(s.alert_consecutive_warning, s.alert_consecutive_critical),
                      lookup_timeouts=Band(s.alert_lookup_timeouts_warning, s.alert_lookup_timeouts_critical),
                      backlog=Band(s.alert_backlog_warning, s.alert_backlog_critical))


class AlertingJourneySink:
    """Forwards everything to `inner` first, then tells `rules` what matters to them."""

    def __init__(self, inner: JourneySink, rules: AlertRules, clock: Callable[[], datetime] | None = None) -> None:
        self._inner = inner
        self._rules = rules
        self._clock = clock or (lambda: datetime.now(UTC))

    def call_started(self, record: JourneyRecord) -> None:
        self._inner.call_started(record)

    def call_identified(self, record: JourneyRecord) -> None:
        self._inner.call_identified(record)

    def node_entered(self, call_id: str, seq: int, node_id: str, at: datetime) -> None:
        self._inner.node_entered(call_id, seq, node_id, at)
        self._rules.node_entered(call_id, node_id, at)

    def node_input(self, call_id: str, seq: int, node_seq: int, masked_input: str, result: str) -> None:
        self._inner.node_input(call_id, seq, node_seq, masked_input, result)

    def service_reached(self, call_id: str, seq: int, service: str, result: ServiceResult) -> None:
        self._inner.service_reached(call_id, seq, service, result)
        self._rules.service_result(call_id, result, self._clock())

    def survey_answer(self, call_id: str, node_id: str, score: int | None, *, no_answer: NoAnswer | None = None,
                      context: SurveyContext = SELF_SERVICE) -> None:
        self._inner.survey_answer(call_id, node_id, score, no_answer=no_answer, context=context)

    def queue_leg(self, call_id: str, leg: QueueLeg) -> None:
        self._inner.queue_leg(call_id, leg)

    def call_ended(self, record: JourneyRecord, ended_at: datetime) -> None:
        self._inner.call_ended(record, ended_at)
        self._rules.call_ended(record.call_id, record.dnis, record.outcome, ended_at)


def _sample(metrics: HotlineMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


class AlertMonitor:
    """Evaluates `rules` every `every_s` from `metrics`; logs and stores each change."""

    def __init__(self, pool: asyncpg.Pool, rules: AlertRules, metrics: HotlineMetrics, *, server_id: str,
                 every_s: float, budget_s: float, clock: Callable[[], datetime] | None = None) -> None:
        self.rules = rules
        self._pool = pool
        self._metrics = metrics
        self._server_id = server_id
        self._every_s = every_s
        self._budget_s = budget_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self._unwritten: deque[AlertEvent] = deque(maxlen=PENDING_MAX)

    async def evaluate_once(self) -> list[AlertEvent]:
        m = self._metrics
        events = self.rules.evaluate(self._clock(), ari_up=_sample(m, "hotline_connection_up", peer="ari") == 1,
                                     backlog=_sample(m, "hotline_journey_backlog"),
                                     lookup_timeouts=_sample(m, "hotline_lookup_seconds_count", result="cancelled"))
        await self._record(events)
        return events

    async def _record(self, events: list[AlertEvent]) -> None:
        for e in events:
            level = logging.INFO if e.change in ("cleared", "eased") else (
                logging.ERROR if e.level == "critical" else logging.WARNING)
            log_event(log, f"alert_{e.change}", level=level, alert=e.key, severity=e.level, value=e.value,
                      message=e.message)
        self._unwritten.extend(events)
        if not self._unwritten:
            return
        batch = list(self._unwritten)
        try:
            await within(self._budget_s, repo.insert(self._pool, self._server_id, batch), what="alert_events")
        except Exception as exc:  # noqa: BLE001 - kept for the next round; the log lines are out already
            log_event(log, "alert_write_failed", level=logging.WARNING, error=type(exc).__name__,
                      waiting=len(self._unwritten))
            return
        for _ in batch:
            self._unwritten.popleft()

    async def run(self) -> None:
        """Evaluate until cancelled; then clear this server's active alerts (nobody watches any more)."""
        try:
            while True:
                await self.evaluate_once()
                await asyncio.sleep(self._every_s)
        except asyncio.CancelledError:
            await self._record(self.rules.clear_all(self._clock(), "the server stopped"))
            raise
