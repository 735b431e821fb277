"""Alert rules: what the operations rules call trouble, with two levels (warning, critical), as pure
state fed by what the server already observes (the journey stream; the metrics' gauges).

Rules (thresholds in `Thresholds`, from HOTLINE_ALERT_* settings; a threshold of 0 turns its level off):

- `error_rate`: of the calls ended within the last `window_s`, the share whose outcome is `error`
  (at least `min_calls` of them, so one failed call at night is not 100 %).
- `consecutive_failures` on a `line:<number>` (calls ending in `error`) or a `node:<id>` (a service
  `failed` there, or a call ending in `error` there): N in a row. The next success clears it — a
  call on that line ending otherwise; a service `ok` at the node, or a call moving on from it.
- `lookup_timeouts`: caller lookups given up at their budget within the last `window_s`.
- `ari_disconnected`: the ARI event stream is down (critical at once: no call is answered).
- `journey_backlog`: journey writes waiting in memory for PostgreSQL.

Each alert has a key (`rule` or `rule:subject`). `AlertBook` turns levels into changes: raised,
escalated or eased (the level changed), cleared. Memory is bounded: windows hold what happened in
their span, subjects are the menus' lines and nodes, calls are forgotten when they end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Level = Literal["warning", "critical"]
Change = Literal["raised", "escalated", "eased", "cleared"]
#: A dialled number the menus do not know is judged as this line (bounded subjects).
OTHER_LINE = "other"
FAILED_OUTCOME = "error"


@dataclass(frozen=True)
class Band:
    """`warning` and `critical` thresholds of one measure (reached when value >= threshold; 0: off)."""

    warning: float
    critical: float

    def level(self, value: float) -> Level | None:
        if self.critical and value >= self.critical:
            return "critical"
        if self.warning and value >= self.warning:
            return "warning"
        return None


@dataclass(frozen=True)
class Thresholds:
    window_s: float = 300.0
    error_rate: Band = Band(0.10, 0.25)  # share of calls
    min_calls: int = 10
    consecutive: Band = Band(3, 5)  # failures in a row, on a line or a node
    lookup_timeouts: Band = Band(5, 20)  # within the window
    backlog: Band = Band(100, 1000)  # journey writes waiting


@dataclass(frozen=True)
class AlertEvent:
    """One change of one alert, as stored and logged."""

    key: str
    rule: str
    subject: str
    change: Change
    level: Level | None  # None when cleared
    value: float
    message: str
    at: datetime


_RANK = {None: 0, "warning": 1, "critical": 2}


@dataclass
class AlertBook:
    """The active alerts, and the changes not yet taken by `drain()`."""

    active: dict[str, Level] = field(default_factory=dict)
    pending: list[AlertEvent] = field(default_factory=list)

    def set(self, rule: str, subject: str, level: Level | None, value: float, message: str, at: datetime) -> None:
        key = f"{rule}:{subject}" if subject else rule
        before = self.active.get(key)
        if level == before:
            return
        if level is None:
            del self.active[key]
            change: Change = "cleared"
        else:
            self.active[key] = level
            change = "raised" if before is None else "escalated" if _RANK[level] > _RANK[before] else "eased"
        self.pending.append(AlertEvent(key, rule, subject, change, level, value, message, at))

    def drain(self) -> list[AlertEvent]:
        taken, self.pending = self.pending, []
        return taken


@dataclass
class _Visit:
    node: str
    failed: bool = False


class AlertRules:
    """Fed by the journey stream (`node_entered`, `service_result`, `call_ended`) and, on each
    `evaluate`, by the server's gauges; the changes come out of `evaluate`."""

    def __init__(self, thresholds: Thresholds, known_lines: Callable[[], Collection[str]] | None = None) -> None:
        self.thresholds = thresholds
        self.book = AlertBook()
        self._known_lines = known_lines
        self._ended: deque[tuple[datetime, bool]] = deque()  # (when, failed) of calls in the window
        self._lookups: deque[tuple[datetime, float]] = deque()  # (when, timeouts so far)
        self._in_a_row: dict[str, int] = {}  # "line:95000" / "node:main" -> failures in a row
        self._visits: dict[str, _Visit] = {}  # call id -> the node it is in

    # --- the journey stream --------------------------------------------------------------------
    def node_entered(self, call_id: str, node: str, at: datetime) -> None:
        visit = self._visits.get(call_id)
        if visit is not None and not visit.failed:
            self._succeeded(f"node:{visit.node}", at)
        self._visits[call_id] = _Visit(node)

    def service_result(self, call_id: str, result: str, at: datetime) -> None:
        visit = self._visits.get(call_id)
        if visit is None:
            return
        if result == "failed":
            visit.failed = True
            self._failed(f"node:{visit.node}", at)
        elif result == "ok":
            self._succeeded(f"node:{visit.node}", at)

    def call_ended(self, call_id: str, line: str, outcome: str | None, at: datetime) -> None:
        failed = outcome == FAILED_OUTCOME
        if self._known_lines is not None and line not in self._known_lines():
            line = OTHER_LINE
        (self._failed if failed else self._succeeded)(f"line:{line}", at)
        visit = self._visits.pop(call_id, None)
        if visit is not None and failed:
            self._failed(f"node:{visit.node}", at)
        elif visit is not None and not visit.failed:
            self._succeeded(f"node:{visit.node}", at)
        self._ended.append((at, failed))
        self._error_rate(at)

    def _failed(self, subject: str, at: datetime) -> None:
        count = self._in_a_row.get(subject, 0) + 1
        self._in_a_row[subject] = count
        self.book.set("consecutive_failures", subject, self.thresholds.consecutive.level(count), count,
                      f"{count} failures in a row on {subject.replace(':', ' ')}", at)

    def _succeeded(self, subject: str, at: datetime) -> None:
        if self._in_a_row.pop(subject, 0):
            self.book.set("consecutive_failures", subject, None, 0, f"{subject.replace(':', ' ')} works again", at)

    # --- periodic ------------------------------------------------------------------------------
    def _window_start(self, now: datetime) -> datetime:
        return now - timedelta(seconds=self.thresholds.window_s)

    def _error_rate(self, now: datetime) -> None:
        start = self._window_start(now)
        while self._ended and self._ended[0][0] < start:
            self._ended.popleft()
        calls = len(self._ended)
        failed = sum(1 for _, f in self._ended if f)
        rate = failed / calls if calls >= self.thresholds.min_calls else 0.0
        self.book.set("error_rate", "", self.thresholds.error_rate.level(rate), round(rate, 4),
                      f"{failed} of {calls} calls failed in the last {self.thresholds.window_s:g} s", now)

    def _lookup_timeouts(self, now: datetime, total: float) -> None:
        """`total`: timeouts counted since the server started (a counter); the window's are the
        growth since the oldest sample still in it."""
        self._lookups.append((now, total))
        start = self._window_start(now)
        while len(self._lookups) > 1 and self._lookups[1][0] <= start:
            self._lookups.popleft()
        recent = total - self._lookups[0][1]
        self.book.set("lookup_timeouts", "", self.thresholds.lookup_timeouts.level(recent), recent,
                      f"{recent:g} caller lookups past their budget in the last {self.thresholds.window_s:g} s", now)

    def evaluate(self, now: datetime, *, ari_up: bool, backlog: float, lookup_timeouts: float) -> list[AlertEvent]:
        """Every rule at `now`; the changes since the last call, oldest first."""
        self._error_rate(now)
        self._lookup_timeouts(now, lookup_timeouts)
        self.book.set("ari_disconnected", "", None if ari_up else "critical", 0 if ari_up else 1,
                      "the ARI event stream is connected" if ari_up else "the ARI event stream is down", now)
        self.book.set("journey_backlog", "", self.thresholds.backlog.level(backlog), backlog,
                      f"{backlog:g} journey writes waiting for PostgreSQL", now)
        return self.book.drain()

    def clear_all(self, now: datetime, why: str) -> list[AlertEvent]:
        """Every active alert cleared (the server stops: nobody watches any more)."""
        for key in list(self.book.active):
            rule, _, subject = key.partition(":")
            self.book.set(rule, subject, None, 0, why, now)
        return self.book.drain()
