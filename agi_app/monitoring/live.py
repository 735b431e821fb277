"""The live view of one server: calls in progress (masked caller, line, current node, time in node,
last activity), kept in memory from what the journey tee sees; and `merge`, the one view over every
server that `hotline monitor` and the wallboard show. Today's totals are not kept here: they are
counted from the journeys in PostgreSQL (`day_totals`), every server's, and survive a restart.

The engine's registry decides which calls are in progress (`snapshot(in_progress=...)`): an entry
the tee kept for a call the registry no longer holds is dropped there, so the view cannot grow
without bound even if an end is never reported. Callers are masked on the way in
(`secure.masked_phone`): the full number never enters a snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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


class LiveView:
    """Fed by the journey tee (`monitoring.journey.MeteredJourneySink`): synchronous, no I/O."""

    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}

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
        self.activity(call_id, f"queue {queue}: {result}")

    def service(self, call_id: str, service: str, result: str) -> None:
        self.activity(call_id, f"{service}: {result}")

    def ended(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def snapshot(self, in_progress: Collection[str], now: datetime | None = None) -> Snapshot:
        """Calls in progress (those of `in_progress` only, oldest first) and calls per line."""
        now = now or datetime.now(UTC)
        for gone in [c for c in self._calls if c not in in_progress]:
            del self._calls[gone]
        calls = sorted(self._calls.values(), key=lambda c: c.started_at)
        return {"calls": [c.as_json(now) for c in calls], "lines": dict(Counter(c.line for c in calls))}

    @staticmethod
    def _did(call: LiveCall, what: str, at: datetime) -> None:
        call.activity, call.activity_at = what, at


def merge(snapshots: Iterable[Snapshot], totals: Snapshot, at: datetime | None = None) -> Snapshot:
    """One view over every fresh server: their calls together (oldest first), lines summed, queues and
    agents from the freshest server that read them (they all see the same Asterisk), and `totals`, the
    day's totals as read from the database (`day_totals.DayTotalsKeeper`)."""
    servers = sorted(snapshots, key=lambda s: str(s.get("at", "")))
    lines: Counter[str] = Counter()
    calls: list[Snapshot] = []
    queues: list[Any] = []
    agents: list[Any] = []
    for s in servers:
        calls += [{**c, "server": s.get("server", "")} for c in s.get("calls", [])]
        lines.update(_counts(s.get("lines", {})))
        if s.get("queues") is not None:
            queues, agents = s["queues"], s.get("agents", [])
    return {"at": (at or datetime.now(UTC)).isoformat(),
            "servers": [{k: s.get(k) for k in ("server", "at", "menu_version", "connections")} for s in servers],
            "calls": sorted(calls, key=lambda c: str(c.get("started_at", ""))),
            "lines": dict(sorted(lines.items())), "totals": totals, "queues": queues, "agents": agents}


def _counts(raw: Mapping[str, Any]) -> dict[str, int]:
    return {str(k): v for k, v in raw.items() if isinstance(v, int)}
