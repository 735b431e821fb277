"""P4, scale in one process: N calls at once through `hotline serve`'s real Server, on the fake ARI
server, and what each costs the app.

    python -m bench.scale --calls 2000 [--rate 100] [--json] [--tracemalloc] [--profile FILE]

Two processes, so that the app's figures are the app's alone:

- this one is the app: the real `Server` (ARI client, call engine, start facts, journey writer,
  monitoring) on a fresh database of the repo's PostgreSQL cluster, with the demo menus and
  customers, logging at INFO to a file as in production;
- a child (`--caller-side`) is Asterisk and the callers: the fast suite's fake ARI server
  (tests/fake_ari: real HTTP and WebSocket, every request checked against Asterisk's declarations)
  and one script per call: dial 95000 (every other caller a known customer), listen to the main
  menu — its first option plays for minutes, so every call stays in it — and, once all N calls are
  there, press 1 and hang up once the next prompt has started (it too plays for minutes).

Figures (the JSON keys are stable: bench/run.py reads them):

- memory_per_call_kb: this process's RSS growth from before the first call to the moment all N
  calls are in the menu, over N (`memory_method` "rss"); with --tracemalloc, Python's traced
  allocations instead ("tracemalloc", and every other figure is then inflated by the tracing);
- loop_lag_p50_ms / _p99_ms: how late a 10 ms ticker on the app's event loop wakes, from the first
  call to the last journey written;
- cpu_ms_per_call / cpu_ms_per_ari_request: this process's CPU time (every thread) over that same
  window, over N and over the ARI requests the fake served;
- ari_requests_per_menu_step: requests on a call's channel and its playbacks from the digit to the
  next prompt's start, the mean over calls (`ari_requests_per_menu_step_max` the worst).

A call counts as failed if it never reached the menu, never reached the next prompt, or its
journey is not written with an outcome; `degraded_starts` counts start-of-call reads past their
budget (callers who got the general menu instead of theirs).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import logging
import pstats
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HOLD_S = 900.0  # the main menu's first option plays this long: calls stay in the menu until told
SHORT_S = 0.02  # every other prompt
LINE = "95000"
PEAK_TIMEOUT_S = 240.0
DEGRADED = re.compile(r"event=(lookup_timeout|lookup_failed|calendar_unavailable|emergency_unavailable"
                      r"|notices_unavailable)\b")


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


# ====================================================================== the caller side (child)


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _read_line(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    if not line:
        raise SystemExit("the app side went away")
    return line.decode().strip()


class _RequestTally:
    """ARI requests per call: on its channel (`/channels/{id}...`) or one of its playbacks (the app
    names them `<call id>-pb<n>`)."""

    def __init__(self, requests: list[Any]) -> None:
        self.requests = requests
        self.seen = 0
        self.per_call: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()

    def update(self) -> None:
        for request in self.requests[self.seen:]:
            parts = request.path.split("/")  # ['', 'ari', 'channels', '<id>', ...]
            if len(parts) > 3 and parts[2] == "channels":
                self.per_call[parts[3]] += 1
                self.kinds[f"{request.method} /channels/{{id}}" + ("/" + parts[4] if len(parts) > 4 else "")] += 1
            elif len(parts) > 3 and parts[2] == "playbacks":
                self.per_call[parts[3].rsplit("-pb", 1)[0]] += 1
                self.kinds[f"{request.method} /playbacks/{{id}}"] += 1
            else:
                self.kinds[f"{request.method} {request.path}"] += 1
        self.seen = len(self.requests)


async def _until(predicate: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109 - a bench's bound
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def caller_side(calls: int, rate: float) -> None:
    from tests.fake_ari.server import FakeAri
    from tests.support.demo import KNOWN_ZH, MAIN_ZH, UNKNOWN

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    fake = FakeAri()
    fake.media_duration = lambda uri: HOLD_S if uri == MAIN_ZH else SHORT_S
    await fake.start()
    _emit({"url": fake.url})
    try:
        await _read_line(reader)  # "go"
        await fake.wait_connected(30)
        ids: list[str] = []
        batch = max(1, int(rate / 20))
        for n in range(calls):
            ids.append(await fake.place_call(KNOWN_ZH if n % 2 else UNKNOWN, LINE))
            if (n + 1) % batch == 0:
                await asyncio.sleep(batch / rate)

        def in_menu(call: str) -> bool:
            channel = fake.channel(call)
            return MAIN_ZH in channel.played and not channel.hungup

        await _until(lambda: all(in_menu(c) or fake.channel(c).hungup for c in ids), PEAK_TIMEOUT_S)
        waiting = [c for c in ids if in_menu(c)]
        _emit({"peak": len(waiting)})
        await _read_line(reader)  # "press"
        fake.media_duration = lambda uri: HOLD_S  # the next prompt plays on: the step ends at its start
        tally = _RequestTally(fake.requests)
        tally.update()
        before = {c: (tally.per_call[c], len(fake.channel(c).played)) for c in waiting}
        for n, call in enumerate(waiting):
            await fake.press(call, "1")
            if (n + 1) % batch == 0:
                await asyncio.sleep(batch / rate)
        steps: list[int] = []
        pending = set(waiting)

        def moved_on() -> bool:
            tally.update()
            for call in list(pending):
                if len(fake.channel(call).played) > before[call][1]:
                    steps.append(tally.per_call[call] - before[call][0])
                    pending.discard(call)
            return not pending

        await _until(moved_on, PEAK_TIMEOUT_S)
        for n, call in enumerate(ids):
            await fake.hangup(call)
            if (n + 1) % batch == 0:
                await asyncio.sleep(batch / rate)
        await asyncio.sleep(1.0)  # the app's last requests on the way
        tally.update()
        _emit({"done": {"requests": len(fake.requests), "reached_menu": len(waiting), "stepped": len(steps),
                        "steps": steps, "kinds": dict(tally.kinds.most_common()),
                        "violations": fake.violations[:5], "violation_count": len(fake.violations)}})
        await _read_line(reader)  # "stop"
    finally:
        await fake.stop()


# ====================================================================== the app side (this process)


@dataclass
class Scale:
    calls: int
    memory_method: str
    memory_per_call_kb: float
    loop_lag_p50_ms: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    cpu_ms_per_call: float
    cpu_ms_per_ari_request: float
    ari_requests_per_menu_step: float
    ari_requests_per_menu_step_max: int
    ari_requests: int
    reached_menu: int
    stepped: int
    journeys_written: int
    known_callers_identified: str
    degraded_starts: int
    failed: int
    db_statements_per_call: float
    gc_pause_max_ms: float
    gc_full_collections: int
    seconds: float
    requests_by_kind: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


class _GcPauses:
    """How long the garbage collector stops the loop: the longest pause, and full collections."""

    def __init__(self) -> None:
        self.longest_ms = 0.0
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        """CPU time, not wall time: a busy machine's scheduling is not the collector's."""
        if phase == "start":
            self._started = time.process_time()
            return
        self.longest_ms = max(self.longest_ms, (time.process_time() - self._started) * 1000)
        self.full += info["generation"] == 2


def _statements(server: Any) -> float:
    """Statements the server's pool has run so far (its `hotline_db_query_seconds` histogram)."""
    return sum(sample.value for metric in server.monitoring.metrics.db_query_seconds.collect()
               for sample in metric.samples if sample.name.endswith("_count"))


async def _lag_sampler(samples: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(0.01)
        samples.append(max(0.0, (loop.time() - start - 0.01) * 1000))


async def _send(child: asyncio.subprocess.Process, line: str) -> None:
    assert child.stdin is not None
    child.stdin.write(line.encode() + b"\n")
    await child.stdin.drain()


async def _receive(child: asyncio.subprocess.Process, key: str, timeout: float) -> Any:  # noqa: ASYNC109
    assert child.stdout is not None
    while True:
        async with asyncio.timeout(timeout):
            line = await child.stdout.readline()
        if not line:
            raise RuntimeError(f"the caller side ended before sending {key!r}")
        message = json.loads(line)
        if key in message:
            return message[key]


async def app_side(calls: int, rate: float, *, traced: bool, profile: Path | None,
                   heap_types: bool = False) -> Scale:
    from agi_app.config import Settings
    from agi_app.db.pool import connection
    from agi_app.db.repositories import customers as customer_repo
    from agi_app.directory.csv_import import parse_customers
    from agi_app.serve.app import Server, settle_heap
    from tests.support import pg
    from tests.support.demo import DEMO_CUSTOMERS, demo_flows

    await asyncio.to_thread(pg.ensure_cluster)
    dsn = await pg.create_database()
    work = Path(tempfile.mkdtemp(prefix="hotline-scale-"))
    log_file = work / "serve.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.scale", "--caller-side", "--calls", str(calls), "--rate", str(rate),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO)
    server: Server | None = None
    task: asyncio.Task[None] | None = None
    shutdown = asyncio.Event()
    try:
        parsed = parse_customers(DEMO_CUSTOMERS.read_text(encoding="utf-8"))
        async with connection(dsn) as conn:
            await customer_repo.import_customers(conn, parsed.customers)
        url = await _receive(child, "url", 60)
        settings = Settings(dsn=dsn, ari_url=url, ari_user="hotline", ari_password="hotline-dev",
                            state_dir=str(work / "state"), sounds_root=str(work / "sounds"),
                            agi_listen="127.0.0.1:0", metrics_listen="127.0.0.1:0", max_calls=calls + 100,
                            shutdown_grace_s=2.0)
        server = await Server.start(settings, flows=demo_flows())
        settle_heap()  # as `hotline serve` does once started
        task = asyncio.create_task(server.run(shutdown))
        await asyncio.sleep(1.0)  # connected, listening, resynced: the quiet before the calls
        gc.collect()
        if traced:
            tracemalloc.start()
        memory_before = tracemalloc.get_traced_memory()[0] // 1024 if traced else _rss_kb()
        samples: list[float] = []
        stop_sampling = asyncio.Event()
        sampler = asyncio.create_task(_lag_sampler(samples, stop_sampling))
        profiler = cProfile.Profile() if profile else None
        pauses = _GcPauses()
        gc.callbacks.append(pauses)
        statements_before = _statements(server)
        started, cpu_started = time.monotonic(), time.process_time()
        if profiler:
            profiler.enable()
        await _send(child, "go")
        peak = await _receive(child, "peak", PEAK_TIMEOUT_S + 60)
        memory_peak = tracemalloc.get_traced_memory()[0] // 1024 if traced else _rss_kb()
        if heap_types:
            tracked = Counter(type(o).__name__ for o in gc.get_objects())
            print(f"objects the collector tracks with {peak} calls: {sum(tracked.values())}",
                  *(f"  {n:8d} {name}" for name, n in tracked.most_common(25)), sep="\n", file=sys.stderr)
        await _send(child, "press")
        done = await _receive(child, "done", PEAK_TIMEOUT_S + 60)
        registry = server.calls
        await _until(lambda: not registry.sessions, 60)
        await server.sink.flush()
        if profiler:
            profiler.disable()
        cpu_ms = (time.process_time() - cpu_started) * 1000
        statements = _statements(server) - statements_before
        seconds = time.monotonic() - started
        stop_sampling.set()
        await sampler
        gc.callbacks.remove(pauses)
        if traced:
            tracemalloc.stop()
        async with connection(dsn) as conn:
            written = await conn.fetchval("SELECT count(*) FROM calls WHERE outcome IS NOT NULL")
            known = await conn.fetchrow("SELECT count(*) FILTER (WHERE customer_id IS NOT NULL) AS found,"
                                        " count(*) AS all FROM calls WHERE caller <> '13111111111'")
        if profiler and profile:
            profiler.dump_stats(str(profile))
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
            print(text.getvalue(), file=sys.stderr)
        await _send(child, "stop")
        steps: list[int] = done["steps"]
        requests: int = done["requests"]
        degraded = sum(1 for line in log_file.read_text(encoding="utf-8").splitlines() if DEGRADED.search(line))
        failed = calls - min(peak, done["stepped"], written)
        return Scale(
            calls=calls, memory_method="tracemalloc" if traced else "rss",
            memory_per_call_kb=round((memory_peak - memory_before) / calls, 1),
            loop_lag_p50_ms=round(percentile(samples, 50), 2), loop_lag_p99_ms=round(percentile(samples, 99), 2),
            loop_lag_max_ms=round(max(samples, default=0.0), 1),
            cpu_ms_per_call=round(cpu_ms / calls, 3), cpu_ms_per_ari_request=round(cpu_ms / max(1, requests), 3),
            ari_requests_per_menu_step=round(statistics.fmean(steps), 2) if steps else 0.0,
            ari_requests_per_menu_step_max=max(steps, default=0), ari_requests=requests, reached_menu=peak,
            stepped=done["stepped"], journeys_written=written,
            known_callers_identified=f"{known['found']}/{known['all']}", degraded_starts=degraded, failed=failed,
            db_statements_per_call=round(statements / calls, 2), gc_pause_max_ms=round(pauses.longest_ms, 1), gc_full_collections=pauses.full,
            seconds=round(seconds, 1), requests_by_kind=done["kinds"], violations=done["violations"])
    finally:
        if task is not None:
            shutdown.set()
            await asyncio.wait({task}, timeout=30)
        elif server is not None:
            await server.close()
        if child.returncode is None:
            child.kill()
        await child.wait()
        await pg.drop_database(dsn)


def table(result: Scale) -> str:
    rows = [
        ("calls at once", f"{result.calls} ({result.reached_menu} in the menu together, {result.failed} failed)"),
        ("memory per call", f"{result.memory_per_call_kb:g} KB ({result.memory_method})   goal ≤ 50 KB"),
        ("event-loop lag p50/p99/max", f"{result.loop_lag_p50_ms:g} / {result.loop_lag_p99_ms:g} / "
                                       f"{result.loop_lag_max_ms:g} ms"),
        ("app CPU per call", f"{result.cpu_ms_per_call:g} ms"),
        ("app CPU per ARI request", f"{result.cpu_ms_per_ari_request:g} ms   goal ≤ 0.5 ms"),
        ("ARI requests per menu step", f"{result.ari_requests_per_menu_step:g} (max "
                                       f"{result.ari_requests_per_menu_step_max})   goal ≤ 3"),
        ("ARI requests", f"{result.ari_requests} ({result.ari_requests / result.calls:.1f} per call)"),
        ("journeys written", f"{result.journeys_written}; known callers identified "
                             f"{result.known_callers_identified}; degraded starts {result.degraded_starts}"),
        ("database statements per call", f"{result.db_statements_per_call:g}"),
        ("garbage collector", f"longest pause {result.gc_pause_max_ms:g} ms, "
                              f"{result.gc_full_collections} full collections"),
        ("wall time", f"{result.seconds:g} s"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0,
                        help="calls placed (digits pressed, calls hung up) per second: it measures calls held at"
                             " once, not a burst")
    parser.add_argument("--json", action="store_true", help="print one JSON object (last line)")
    parser.add_argument("--tracemalloc", action="store_true", help="memory from Python's allocations, not RSS")
    parser.add_argument("--profile", type=Path, help="cProfile the app over the run into this file")
    parser.add_argument("--heap-types", action="store_true",
                        help="print the object types the garbage collector tracks at the peak (stderr)")
    parser.add_argument("--caller-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.caller_side:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        asyncio.run(caller_side(args.calls, args.rate))
        return 0
    result = asyncio.run(app_side(args.calls, args.rate, traced=args.tracemalloc, profile=args.profile,
                                  heap_types=args.heap_types))
    if args.json:
        print(json.dumps(result.__dict__))
    else:
        print(table(result))
        if result.violations:
            print("ARI protocol violations:", *result.violations, sep="\n  ")
    return 1 if result.failed or result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
