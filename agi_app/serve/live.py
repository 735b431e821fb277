"""What this server publishes to the live view each second: the journey tee's calls in progress
(only those the registry still holds) and today's totals, the menu version, connection states, and
queues and agents from AMI when it is logged in.

The AMI read has the live budget: past it, or with AMI down, the snapshot says `queues: null`
(unknown here; the merged view takes another server's) rather than waiting.

And the wallboard's drawing of the menus in use (`FlowDrawing`): Graphviz runs in a thread, once
per menu version, within HOTLINE_GRAPH_RENDER_MS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agi_app.admin.graph import GraphError, render_svg
from agi_app.ami.client import AmiClient, AmiError
from agi_app.ami.queues import agent_of, queue_status
from agi_app.centre.queues import QueueSnapshot
from agi_app.engine.registry import CallRegistry
from agi_app.flows.graph import flow_dot
from agi_app.flows.model import FlowSet
from agi_app.logs import log_event
from agi_app.monitoring.live import LiveView, Snapshot

log = logging.getLogger("hotline.live")


def queue_view(snapshots: dict[str, QueueSnapshot]) -> tuple[list[Snapshot], list[Snapshot]]:
    """Queues (callers waiting, agents, free agents, app_queue's counts) and their agents, by group."""
    queues = [{"group": group, "waiting": s.waiting, "agents": len(s.members),
               "free": sum(1 for m in s.members if m.logged_in_and_unpaused and not m.in_call),
               "completed": s.completed, "abandoned": s.abandoned}
              for group, s in sorted(snapshots.items())]
    agents = sorted(({"agent": agent_of(m.interface), "group": group, "status": m.status, "paused": m.paused,
                      "in_call": m.in_call, "calls_taken": m.calls_taken}
                     for group, s in snapshots.items() for m in s.members),
                    key=lambda a: (a["group"], a["agent"]))
    return queues, agents


class LiveSnapshot:
    """`await LiveSnapshot(...)()` is this server's part of the live view now."""

    def __init__(self, view: LiveView, calls: CallRegistry, menu_version: Callable[[], int | None],
                 connections: Callable[[], dict[str, bool]], ami: AmiClient | None, *, ami_budget_s: float) -> None:
        self._view = view
        self._calls = calls
        self._menu_version = menu_version
        self._connections = connections
        self._ami = ami
        self._ami_budget_s = ami_budget_s

    async def __call__(self) -> Snapshot:
        snapshot: dict[str, Any] = {**self._view.snapshot(self._calls.sessions.keys()),
                                    "menu_version": self._menu_version(), "connections": self._connections(),
                                    "queues": None, "agents": None}
        if self._ami is not None and self._ami.connected:
            try:
                queues = await queue_status(self._ami, timeout=self._ami_budget_s)
            except (AmiError, ValueError):
                return snapshot
            snapshot["queues"], snapshot["agents"] = queue_view(queues)
        return snapshot


class FlowDrawing:
    """The menus in use as SVG, drawn once per version (concurrent viewers wait for one drawing);
    None when Graphviz cannot draw them (missing, failing or slow: logged, tried again next time)."""

    def __init__(self, flows: Callable[[], FlowSet], *, budget_s: float) -> None:
        self._flows = flows
        self._budget_s = budget_s
        self._drawn: tuple[int | None, str] | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> str | None:
        flows = self._flows()
        async with self._lock:
            if self._drawn is not None and self._drawn[0] == flows.version:
                return self._drawn[1]
            dot = flow_dot(flows, title=f"menu version {flows.version}")
            try:  # blocks while `dot` runs: off the event loop, and `dot` itself has the budget
                svg = await asyncio.to_thread(render_svg, dot, timeout_s=self._budget_s)
            except GraphError as exc:
                log_event(log, "flow_drawing_failed", level=logging.WARNING, menu_version=flows.version,
                          error=str(exc)[:200])
                return None
            self._drawn = (flows.version, svg)
            return svg
