"""Every metric the hotline exports, in one registry per server: the one place their names live.

Labels have bounded values, never a caller's number or a call id: lines are those of the menus in
use (any other dialled number is `other`), outcomes and results come from fixed sets, node and
service ids from the published menus. A registry of its own (not prometheus_client's global one)
lets several servers live in one process (the tests) without their series mixing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

#: The media type of `HotlineMetrics.exposition()`.
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: The `line` label of a dialled number the menus do not know.
OTHER_LINE = "other"

# Seconds. The caller lookup has a 300 ms budget by default; ARI and database requests are mostly
# a few milliseconds on loopback, with budgets of seconds.
_LOOKUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Seconds until the caller hears the next prompt; fine around the 20 ms goal of `make bench` (P3).
_PROMPT_BUCKETS = (0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class HotlineMetrics:
    """The counters and histograms the observers feed, and gauges read from live state at scrape time."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.calls = Counter("hotline_calls", "Calls ended, by line (dialled number) and outcome",
                             ["line", "outcome"], registry=registry)
        self.node_visits = Counter("hotline_node_visits", "Menu nodes entered by calls", ["node"],
                                   registry=registry)
        self.service_results = Counter("hotline_service_results", "Self-service operations reached, by result",
                                       ["service", "result"], registry=registry)
        self.dtmf_errors = Counter("hotline_dtmf_errors", "Caller inputs refused: invalid keys, or none in time",
                                   ["kind"], registry=registry)
        self.queue_handoffs = Counter("hotline_queue_handoffs", "Calls handed to an agent queue (result waiting),"
                                      " or that took a callback instead (callback)", ["queue", "result"],
                                      registry=registry)
        self.survey_answers = Counter("hotline_survey_answers", "Satisfaction survey answers, by score (1-5)",
                                      ["score"], registry=registry)
        self.lookup_seconds = Histogram(
            "hotline_lookup_seconds", "Caller lookups in the directory (result: found, unknown, error,"
            " cancelled: past its budget or the caller gone)", ["result"], buckets=_LOOKUP_BUCKETS,
            registry=registry)
        self.ari_request_seconds = Histogram(
            "hotline_ari_request_seconds", "ARI HTTP requests, by method, resource (channels, playbacks, ...)"
            " and status class (2xx, 4xx, 5xx, error: not answered)", ["method", "resource", "status"],
            buckets=_REQUEST_BUCKETS, registry=registry)
        self.db_query_seconds = Histogram(
            "hotline_db_query_seconds", "PostgreSQL statements of the server's pool, by kind (select, insert,"
            " update, ...) and result (ok, error)", ["statement", "result"], buckets=_REQUEST_BUCKETS,
            registry=registry)
        self.prompt_latency_seconds = Histogram(
            "hotline_prompt_latency_seconds", "From a call's StasisStart (since=stasis_start) or a caller's key"
            " (since=dtmf) to the next prompt's play request answered by Asterisk", ["since"],
            buckets=_PROMPT_BUCKETS, registry=registry)
        self.prompt_clock = PromptClock(self.prompt_latency_seconds)
        self._in_progress = Gauge("hotline_calls_in_progress", "Calls the server holds now", registry=registry)
        self._menu_version = Gauge("hotline_menu_version", "Menu version new calls get (0: a flow file, not a"
                                   " published version)", registry=registry)
        self._backlog = Gauge("hotline_journey_backlog", "Journey writes waiting in memory for PostgreSQL",
                              registry=registry)
        self._spill_files = Gauge("hotline_journey_spill_files", "Spill files of journey writes waiting for"
                                  " PostgreSQL to answer", registry=registry)
        self._connected = Gauge("hotline_connection_up", "Whether a peer is connected and answering (1) or not"
                                " (0): ari (the event stream), database, ami", ["peer"], registry=registry)

    # --- live state, read at scrape time -------------------------------------------------------
    def watch_calls_in_progress(self, count: Callable[[], int]) -> None:
        self._in_progress.set_function(count)

    def watch_menu_version(self, version: Callable[[], int | None]) -> None:
        self._menu_version.set_function(lambda: version() or 0)

    def watch_journey_backlog(self, in_memory: Callable[[], int], spill_files: Callable[[], int]) -> None:
        self._backlog.set_function(in_memory)
        self._spill_files.set_function(spill_files)

    def watch_connection(self, peer: str, is_up: Callable[[], bool]) -> None:
        """`peer` (ari, database, ami) reported as 1 while `is_up()`."""
        self._connected.labels(peer=peer).set_function(lambda: 1.0 if is_up() else 0.0)

    def exposition(self) -> bytes:
        """Every metric in Prometheus text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


class PromptClock:
    """Times what a caller waits for the next prompt: from the call's arrival (StasisStart) or a key
    to the next play request Asterisk accepted, into `hotline_prompt_latency_seconds`.

    Fed by the event router (arrived, key, left) and by the ARI client's request tracing
    (prompt_started), each with a channel id only. One pending mark per channel, dropped when the
    channel leaves; at most `limit` channels are tracked, so missed ends cannot grow it for ever.
    """

    def __init__(self, histogram: Histogram, *, limit: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._histogram = histogram
        self._limit = limit
        self._clock = clock
        self._marks: dict[str, tuple[str, float]] = {}

    def _mark(self, channel_id: str, since: str) -> None:
        if channel_id in self._marks or len(self._marks) < self._limit:
            self._marks[channel_id] = (since, self._clock())

    def arrived(self, channel_id: str) -> None:
        self._mark(channel_id, "stasis_start")

    def key(self, channel_id: str) -> None:
        """A key: the clock restarts (the last key before a prompt counts, not the first of a PIN),
        unless the call still waits for its first prompt."""
        mark = self._marks.get(channel_id)
        if mark is None or mark[0] != "stasis_start":
            self._mark(channel_id, "dtmf")

    def prompt_started(self, channel_id: str) -> None:
        mark = self._marks.pop(channel_id, None)
        if mark is not None:
            since, at = mark
            self._histogram.labels(since=since).observe(self._clock() - at)

    def left(self, channel_id: str) -> None:
        self._marks.pop(channel_id, None)

    @property
    def pending(self) -> int:
        return len(self._marks)
