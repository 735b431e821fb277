"""The live view of one server: calls in progress (masked caller, line, current node, time in node,
last activity) and today's totals, kept in memory from what the journey tee sees; and `merge`, the
one view over every server that `hotline monitor` and the wallboard show.

The engine's registry decides which calls are in progress (`snapshot(in_progress=...)`): an entry
the tee kept for a call the registry no longer holds is dropped there, so the view cannot grow
without bound even if an end is never reported. Callers are masked on the way in
(`secure.masked_phone`): the full number never enters a snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from agi_app.secure import masked_phone

#: A snapshot as stored (jsonb) and shown: plain JSON types only.
Snapshot = dict[str, Any]


@dataclass
class LiveCall:
    call_id: str
    caller: str  # masked
    line: str
    started_at: datetime
    node: str = ""
    node_since: datetime | None = None
    activity: str = "started"
    activity_at: datetime | None = None

    def as_json(self, now: datetime) -> Snapshot:
        since = self.node_since or self.started_at
        return {"call_id": self.call_id, "caller": self.caller, "line": self.line,
                "started_at": self.started_at.isoformat(), "node": self.node,
                "in_node_s": round(max((now - since).total_seconds(), 0.0), 1),
                "last_activity": self.activity,
                "last_activity_at": (self.activity_at or self.started_at).isoformat()}


@dataclass
class DayTotals:
    """Calls of one UTC day as they end, by outcome; hand-offs to agents; service failures."""

    day: date
    outcomes: Counter[str] = field(default_factory=Counter)
    to_agents: int = 0
    service_failures: int = 0

    def as_json(self) -> Snapshot:
        return {"day": self.day.isoformat(), "calls": sum(self.outcomes.values()),
                "to_agents": self.to_agents, "errors": self.outcomes.get("error", 0),
                "service_failures": self.service_failures, "outcomes": dict(sorted(self.outcomes.items()))}


class LiveView:
    """Fed by the journey tee (`monitoring.journey.MeteredJourneySink`): synchronous, no I/O."""

    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}
        self._totals = DayTotals(datetime.now(UTC).date())

    def started(self, call_id: str, caller: str | None, line: str, at: datetime) -> None:
        self._calls[call_id] = LiveCall(call_id, masked_phone(caller), line, at, activity_at=at)

    def entered(self, call_id: str, node_id: str, at: datetime) -> None:
        if (call := self._calls.get(call_id)) is not None:
            call.node, call.node_since = node_id, at
            self._did(call, f"entered {node_id}", at)

    def activity(self, call_id: str, what: str, at: datetime | None = None) -> None:
        """`what` names the kind of event, never what was typed (a key may be a PIN)."""
        if (call := self._calls.get(call_id)) is not None:
            self._did(call, what, at or datetime.now(UTC))

    def queued(self, call_id: str, queue: str, result: str) -> None:
        """Handed to an agent queue (`waiting`), or a callback taken instead."""
        if result == "waiting":
            self._today().to_agents += 1
        self.activity(call_id, f"queue {queue}: {result}")

    def service(self, call_id: str, service: str, result: str) -> None:
        if result == "failed":
            self._today().service_failures += 1
        self.activity(call_id, f"{service}: {result}")

    def ended(self, call_id: str, outcome: str | None) -> None:
        self._calls.pop(call_id, None)
        self._today().outcomes[outcome or "error"] += 1

    def snapshot(self, in_progress: Collection[str], now: datetime | None = None) -> Snapshot:
        """Calls in progress (those of `in_progress` only, oldest first) and today's totals."""
        now = now or datetime.now(UTC)
        for gone in [c for c in self._calls if c not in in_progress]:
            del self._calls[gone]
        calls = sorted(self._calls.values(), key=lambda c: c.started_at)
        return {"calls": [c.as_json(now) for c in calls], "lines": dict(Counter(c.line for c in calls)),
                "totals": self._today(now).as_json()}

    @staticmethod
    def _did(call: LiveCall, what: str, at: datetime) -> None:
        call.activity, call.activity_at = what, at

    def _today(self, now: datetime | None = None) -> DayTotals:
        today = (now or datetime.now(UTC)).date()
        if self._totals.day != today:
            self._totals = DayTotals(today)
        return self._totals


def merge(snapshots: Iterable[Snapshot], at: datetime | None = None) -> Snapshot:
    """One view over every fresh server: their calls together (oldest first), lines and totals summed,
    queues and agents from the freshest server that read them (they all see the same Asterisk)."""
    servers = sorted(snapshots, key=lambda s: str(s.get("at", "")))
    lines: Counter[str] = Counter()
    totals: Counter[str] = Counter(dict.fromkeys(("calls", "to_agents", "errors", "service_failures"), 0))
    outcomes: Counter[str] = Counter()
    calls: list[Snapshot] = []
    queues: list[Any] = []
    agents: list[Any] = []
    for s in servers:
        calls += [{**c, "server": s.get("server", "")} for c in s.get("calls", [])]
        lines.update(_counts(s.get("lines", {})))
        day_totals = s.get("totals", {})
        totals.update({k: v for k, v in day_totals.items() if isinstance(v, int)})
        outcomes.update(_counts(day_totals.get("outcomes", {})))
        if s.get("queues") is not None:
            queues, agents = s["queues"], s.get("agents", [])
    return {"at": (at or datetime.now(UTC)).isoformat(),
            "servers": [{k: s.get(k) for k in ("server", "at", "menu_version", "connections")} for s in servers],
            "calls": sorted(calls, key=lambda c: str(c.get("started_at", ""))),
            "lines": dict(sorted(lines.items())), "totals": {**totals, "outcomes": dict(sorted(outcomes.items()))},
            "queues": queues, "agents": agents}


def _counts(raw: Mapping[str, Any]) -> dict[str, int]:
    return {str(k): v for k, v in raw.items() if isinstance(v, int)}
