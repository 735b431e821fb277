"""Recordings of the real Asterisk sandbox, and cloning them into the fake's events and bodies.

Why: hand-written event JSON drifts from what Asterisk really sends (field names, which optional fields
appear, the order of events around a hangup...).  ``scripts/record-ari-fixtures`` records real ARI
traffic per scenario into ``tests/fixtures/ari/<scenario>.json``; the fake only ever emits deep copies
of recorded objects with ids, numbers, digits, media and timestamps substituted, so every field set
and every sequence is Asterisk's own.

File format (one scenario per file)::

    {"scenario": "...", "description": "...", "recorded_with": {...},
     "steps": [
        {"t_ms": 0, "event": {...}},                                   # WebSocket event, in order
        {"t_ms": 3, "request": {"label": "answer", "method": "POST", "path": "/ari/...",
                                "query": {"k": ["v"]}, "json": null},
                     "response": {"status": 204, "json": null, "headers": {...}}},
        {"t_ms": 9, "note": "caller hangs up"}                         # free text markers
     ]}

Labels are unique across all files so the fake can ask for "what did Asterisk answer to X".
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "ari"

#: Events that close a call for the app, seen at the end of a recorded call.
_TAIL_TYPES = frozenset(
    {"ChannelVarset", "ChannelHangupRequest", "StasisEnd", "ChannelDestroyed", "PlaybackFinished"}
)


@dataclass(frozen=True)
class RecordedResponse:
    """What real Asterisk answered to a labelled request."""

    status: int
    json: Any
    headers: dict[str, str]


class Recordings:
    """All recorded scenarios of one fixtures directory, indexed for the fake."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.scenarios: dict[str, list[dict[str, Any]]] = {}
        self._requests: dict[str, tuple[str, int]] = {}  # label -> (scenario, step index)
        for path in sorted(directory.glob("*.json")):
            doc = json.loads(path.read_text())
            name = doc.get("scenario", path.stem)
            steps = doc["steps"]
            self.scenarios[name] = steps
            for i, step in enumerate(steps):
                req = step.get("request")
                if req and req.get("label"):
                    if req["label"] in self._requests:
                        raise ValueError(f"request label {req['label']!r} recorded twice ({path})")
                    self._requests[req["label"]] = (name, i)
        self._first: dict[str, dict[str, Any]] = {}
        for ev in self.events():
            self._first.setdefault(ev.get("type", ""), ev)
        if not self.scenarios:
            raise FileNotFoundError(f"no ARI recordings in {directory}; run scripts/record-ari-fixtures")

    # ------------------------------------------------------------------ lookups
    def events(self, scenario: str | None = None) -> list[dict[str, Any]]:
        """Recorded events (originals: do not mutate), of one scenario or of all in file order."""
        names = [scenario] if scenario else list(self.scenarios)
        return [s["event"] for n in names for s in self.scenarios[n] if "event" in s]

    def has_label(self, label: str) -> bool:
        return label in self._requests

    def request(self, label: str) -> dict[str, Any]:
        scenario, i = self._requests[label]
        return self.scenarios[scenario][i]["request"]

    def response(self, label: str) -> RecordedResponse:
        """Deep copy of the response real Asterisk gave to the request recorded under ``label``."""
        scenario, i = self._requests[label]
        resp = self.scenarios[scenario][i]["response"]
        return RecordedResponse(resp["status"], copy.deepcopy(resp.get("json")), dict(resp.get("headers") or {}))

    def template(self, event_type: str, **match: Any) -> dict[str, Any]:
        """Deep copy of the first recorded event of ``event_type`` whose top-level fields equal ``match``."""
        if not match:  # the hot path (every emitted event): indexed
            first = self._first.get(event_type)
            if first is not None:
                return copy.deepcopy(first)
        for ev in self.events():
            if ev.get("type") == event_type and all(ev.get(k) == v for k, v in match.items()):
                return copy.deepcopy(ev)
        raise KeyError(f"no recorded {event_type} event matching {match}; re-record fixtures")

    def has_event(self, event_type: str) -> bool:
        return event_type in self._first

    def events_after(self, label: str) -> list[dict[str, Any]]:
        """Deep copies of the events recorded after the labelled request, up to the next request.

        The recorder waits for a request's consequences to settle before sending the next one, so
        this is "what Asterisk emitted because of that request".
        """
        scenario, i = self._requests[label]
        out: list[dict[str, Any]] = []
        for step in self.scenarios[scenario][i + 1 :]:
            if "request" in step:
                break
            if "event" in step:
                out.append(copy.deepcopy(step["event"]))
        return out

    def caller_hangup_tail(self, scenario: str = "caller_hangup") -> list[dict[str, Any]]:
        """The events that end a call the caller hung up (deep copies, in recorded order).

        Taken from the end of the scenario: the last PlaybackStarted is the boundary, everything after it
        of the call-ending kinds (RTP QoS ChannelVarset, ChannelHangupRequest, PlaybackFinished,
        StasisEnd, ChannelDestroyed when the app receives it) is the tail.
        """
        steps = [s for s in self.scenarios[scenario] if "event" in s or "request" in s]
        start = 0
        for i, s in enumerate(steps):
            if "event" in s and s["event"]["type"] == "PlaybackStarted":
                start = i + 1
        out = []
        for s in steps[start:]:
            if "request" in s:
                break
            if s["event"]["type"] in _TAIL_TYPES:
                out.append(copy.deepcopy(s["event"]))
        if not any(e["type"] == "StasisEnd" for e in out):
            raise ValueError(f"recording {scenario!r} has no StasisEnd after the last playback")
        return out


@functools.lru_cache(maxsize=4)
def _load(directory: str) -> Recordings:
    return Recordings(Path(directory))


def load_recordings(directory: Path | None = None) -> Recordings:
    """Recordings of ``directory`` (default ``tests/fixtures/ari``), parsed once per process."""
    return _load(str((directory or DEFAULT_FIXTURES_DIR).resolve()))
