"""`make bench`: the hotline's capacity and cost against native dialplan on the same Asterisk, in
one run (bench/README.md says what each figure means and how it is measured).

    python -m bench.run [--rates 20,40,60,80,100,120] [--step-s 20] [--reload-rate 40] [--out bench/results]

Brings up the sandbox (Asterisk with the bench's native context, PostgreSQL) and a `hotline serve`
on a fresh database with the bench callers and menus, as the end-to-end suite does; steps SIPp
through the native IVR and through the product; publishes a menu during a load step; runs
`bench.scale` (P4) when it is there; prints the table and writes it, with the JSON, to --out.
Run it alone on the machine (`make bench` holds the sandbox's Asterisk lock): its figures are the
machine's.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import aiohttp
import asyncpg
import yaml

from agi_app.admin import menus as admin_menus
from agi_app.config import read_env_file
from bench import prom
from bench.cpu import cpu_ms
from bench.journeys import (
    BenchCustomer,
    bench_customers,
    check_journeys,
    customers_csv,
    degraded_calls,
    ended_count,
    install_write_clock,
    step_journeys,
    write_lag,
)
from bench.results import NATIVE, PRODUCT, Latency, Step, goals, goals_markdown, steps_markdown
from bench.sipp_load import callers_file, run_step, sipp_command
from tests.support import pg

REPO = Path(__file__).resolve().parents[1]
SANDBOX = str(REPO / "scripts" / "sandbox")
HOTLINE = str(REPO / ".venv" / "bin" / "hotline")
RUN = REPO / ".run"
FLOWS = Path(__file__).resolve().parent / "flows.yaml"
PRODUCT_LINE = "95000"
ASTERISK_LOCK = Path("/tmp/hotline-asterisk.lock")

#: The app's histograms behind P3 (metric, labels): absent ones are reported as not measured.
LATENCIES = {"first_prompt": ("hotline_prompt_latency_seconds", {"since": "stasis_start"}),
             "dtmf_prompt": ("hotline_prompt_latency_seconds", {"since": "dtmf"}),
             "lookup": ("hotline_lookup_seconds", {})}


@dataclass(frozen=True)
class BenchConfig:
    rates: Sequence[int]
    step_s: float
    reload_rate: int
    out: Path
    customers: int = 3000
    pause_s: float = 2.0  # between steps: the last calls' journeys written, Asterisk idle again
    stop_at_failure: bool = True  # no higher step of a mode after one with failed calls
    scale_calls: int = 2000


@dataclass
class Sandbox:
    """What the bench brought up, so it stops only that."""

    env: dict[str, str]
    asterisk_pid: int
    asterisk_started: bool
    native_line: str


def _sandbox(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SANDBOX, *args], check=check, capture_output=True, text=True)


def bring_up_sandbox() -> Sandbox:
    """deps, chroot, PostgreSQL, Asterisk (restarted: the bench's config rendered), the env file."""
    _sandbox("deps")
    _sandbox("chroot")
    _sandbox("pg-start")
    was_running = _sandbox("asterisk-status", check=False).returncode == 0
    _sandbox("asterisk-start")
    _sandbox("env")
    status = _sandbox("asterisk-status").stdout
    match = re.search(r"pid (\d+)", status)
    if match is None:
        raise RuntimeError(f"cannot tell Asterisk's pid from: {status}")
    values = yaml.safe_load((REPO / "config" / "sandbox.yaml").read_text(encoding="utf-8"))
    env = {**os.environ, **read_env_file(RUN / "hotline.env")}
    return Sandbox(env, int(match.group(1)), not was_running, str(values["bench"]["native_line"]))


def _free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_media_ports() -> int:
    """An even UDP port with the next three free: SIPp's RTP and RTCP for audio (and video)."""
    for port in range(40000, 59990, 4):
        try:
            for p in range(port, port + 4):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free UDP ports for SIPp's media in 40000-59990")


async def _cli(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(HOTLINE, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"hotline {' '.join(args)} failed: {err.decode(errors='replace')[-1000:]}")
    return out.decode()


async def _app_connected(env: dict[str, str]) -> bool:
    auth = aiohttp.encode_basic_auth(env["HOTLINE_ARI_USER"], env["HOTLINE_ARI_PASSWORD"])
    async with aiohttp.ClientSession(headers={"Authorization": auth}, timeout=aiohttp.ClientTimeout(total=5)) as s:
        async with s.get(env["HOTLINE_ARI_URL"].rstrip("/") + "/ari/applications") as resp:
            return any(app["name"] == env["HOTLINE_ARI_APP"] for app in await resp.json())


@dataclass
class Server:
    """`hotline serve` under test: its process and where its metrics are."""

    process: asyncio.subprocess.Process
    metrics_url: str
    log: Path

    async def scrape(self, session: aiohttp.ClientSession) -> prom.Samples:
        async with asyncio.timeout(5), session.get(self.metrics_url) as resp:
            return prom.parse_samples(await resp.text())


@asynccontextmanager
async def serving(env: dict[str, str], state_dir: Path) -> AsyncIterator[Server]:
    """`hotline serve` started (its ARI app connected) and stopped with SIGTERM at the end."""
    port = _free_port()
    log = RUN / "bench-serve.log"
    serve_env = {**env, "HOTLINE_METRICS_LISTEN": f"127.0.0.1:{port}", "HOTLINE_STATE_DIR": str(state_dir),
                 # The app's own cap on calls up at once (500) would refuse calls before the machine does.
                 "HOTLINE_MAX_CALLS": "2000"}
    with log.open("w") as out:
        process = await asyncio.create_subprocess_exec(HOTLINE, "serve", env=serve_env, stdout=out, stderr=out)
    try:
        for _ in range(150):
            if await _app_connected(env):
                break
            if process.returncode is not None:
                raise RuntimeError("hotline serve exited:\n" + log.read_text()[-3000:])
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("hotline serve did not connect to ARI:\n" + log.read_text()[-3000:])
        yield Server(process, f"http://127.0.0.1:{port}/metrics", log)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


@dataclass
class Bench:
    """One run: the sandbox, the bench's database and callers, the server once started, the steps so far."""

    config: BenchConfig
    sandbox: Sandbox
    dsn: str
    work: Path
    customers: dict[str, BenchCustomer]
    server: Server | None = None
    http: aiohttp.ClientSession | None = None
    steps: list[Step] = field(default_factory=list)

    async def load(self, mode: str, rate: int, *, during: Callable[[], Coroutine[Any, Any, None]] | None = None,
                   ) -> tuple[Step, datetime, datetime]:
        """One step and its time window; `during` runs alongside the calls (P5's publish)."""
        line = self.sandbox.native_line if mode == NATIVE else PRODUCT_LINE
        server = self.server if mode == PRODUCT else None
        step = Step(mode=mode, rate=rate, seconds=self.config.step_s)
        calls = max(1, int(rate * self.config.step_s))
        stats = self.work / f"{mode}-{rate}-{time.monotonic_ns()}.csv"
        command = sipp_command(target="127.0.0.1:5060", line=line, rate=rate, calls=calls,
                               callers=self.work / "callers.csv", stats=stats, sip_port=_free_port(socket.SOCK_DGRAM),
                               media_port=_free_media_ports(), errors=self.work / f"{mode}-{rate}-errors.log")
        before = await server.scrape(self.http) if server and self.http else {}
        log_offset = (await asyncio.to_thread(server.log.stat)).st_size if server else 0
        app_before = cpu_ms(server.process.pid) if server else 0.0
        asterisk_before = cpu_ms(self.sandbox.asterisk_pid)
        since = datetime.now(UTC)
        backlog = asyncio.create_task(self._watch_backlog(step)) if server else None
        alongside = asyncio.create_task(during()) if during is not None else None
        try:
            counts, _ = await run_step(command, stats, seconds=self.config.step_s)
        finally:
            if backlog is not None:
                backlog.cancel()
                with suppress(asyncio.CancelledError):
                    await backlog
            if alongside is not None and not alongside.done():
                alongside.cancel()  # the step failed before it was due: not left running
                with suppress(asyncio.CancelledError):
                    await alongside
        if alongside is not None:
            alongside.result()  # a failed publish fails the bench, loudly
        sipp_done = time.monotonic()
        until = datetime.now(UTC)
        step.placed = calls
        step.sipp_failed = counts.failed + max(0, calls - counts.placed)  # never placed: failed too
        if server and self.http:
            step.journey_drain_s = await self._wait_journeys(since, until, calls, sipp_done)
            after = await server.scrape(self.http)
            step.app_cpu_ms = round(cpu_ms(server.process.pid) - app_before, 1)
            step.ari_requests = int(prom.delta(before, after, "hotline_ari_request_seconds_count"))
            step.prompt_steps = int(sum(prom.delta(before, after, "hotline_node_visits_total", {"node": node})
                                        for node in prompt_nodes()))
            for name, (metric, labels) in LATENCIES.items():
                q = prom.quantiles(before, after, metric, labels)
                if q.count:
                    step.latency[name] = Latency(q.count, q.p50_ms, q.p99_ms)
            degraded = degraded_calls(await asyncio.to_thread(_lines_from, server.log, log_offset))
            async with self.db() as conn:
                check = check_journeys(calls, await step_journeys(conn, PRODUCT_LINE, since, until), self.customers,
                                       degraded)
                written, lag_p50, lag_p99 = await write_lag(conn, PRODUCT_LINE, since, until)
            if written:
                step.latency["journey_write"] = Latency(written, lag_p50, lag_p99)
            step.journey_failed = check.failed
            step.failure_reasons = dict(check.reasons)
        step.asterisk_cpu_ms = round(cpu_ms(self.sandbox.asterisk_pid) - asterisk_before, 1)
        self.steps.append(step)
        _say(f"{mode} {rate}/s: {calls} calls, failed {step.failed} (SIPp {step.sipp_failed}, journeys "
             f"{step.journey_failed} {step.failure_reasons or ''}), Asterisk {step.per_call(step.asterisk_cpu_ms)}"
             f" ms/call" + (f", app {step.per_call(step.app_cpu_ms)} ms/call" if server else ""))
        return step, since, until

    @asynccontextmanager
    async def db(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            yield conn
        finally:
            await conn.close()

    async def _watch_backlog(self, step: Step) -> None:
        """The journey writer's backlog, read every second from the metrics (its worst moment)."""
        assert self.server is not None and self.http is not None
        while True:
            await asyncio.sleep(1.0)
            with suppress(aiohttp.ClientError, TimeoutError):
                samples = await self.server.scrape(self.http)
                step.journey_backlog_max = max(step.journey_backlog_max,
                                               prom.total(samples, "hotline_journey_backlog"))

    async def _wait_journeys(self, since: datetime, until: datetime, calls: int, sipp_done: float) -> float | None:
        """Seconds from the last call's end until every journey of the step is complete (None: not within 30 s)."""
        async with self.db() as conn:
            while time.monotonic() - sipp_done < 30:
                if await ended_count(conn, PRODUCT_LINE, since, until) >= calls:
                    return round(time.monotonic() - sipp_done, 2)
                await asyncio.sleep(0.2)
        return None

    async def climb(self, mode: str) -> None:
        for rate in self.config.rates:
            step, _, _ = await self.load(mode, rate)
            await asyncio.sleep(self.config.pause_s)
            if not step.clean and self.config.stop_at_failure:
                _say(f"{mode}: stopped climbing at {rate}/s ({step.failed} failed calls)")
                return

    async def reload_under_load(self) -> dict[str, Any]:
        """P5: a new menu version published halfway through a product step."""
        new_flows = self.work / "flows-reload.yaml"
        document = yaml.safe_load(FLOWS.read_text(encoding="utf-8"))
        document["description"] = "Bench menus, republished under load (make bench P5)"
        new_flows.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")

        async def publish() -> None:
            """What `hotline menus publish` does, from this process: the CLI's start-up (seconds on a busy
            machine) must not push the publish past the step's last calls."""
            await asyncio.sleep(self.config.step_s / 3)
            async with self.db() as conn:
                done = await admin_menus.publish(conn, new_flows, actor="bench", sounds_dir=REPO / "sounds",
                                                 comment="bench reload under load")
            if done.unchanged:
                raise RuntimeError("P5: the republished menus were identical to the active version")

        step, since, until = await self.load(PRODUCT, self.config.reload_rate, during=publish)
        self.steps.remove(step)  # reported on its own, not as a capacity step
        async with self.db() as conn:
            version = await conn.fetchrow("SELECT version, published_at FROM menu_versions ORDER BY version DESC LIMIT 1")
            journeys = await step_journeys(conn, PRODUCT_LINE, since, until)
        published_at: datetime = version["published_at"]
        new = sorted(j.started_at for j in journeys if j.menu_version == version["version"])
        stale = [j.started_at for j in journeys if j.menu_version != version["version"] and j.started_at > published_at]
        return {"rate": step.rate, "placed": step.placed, "failed": step.failed, "sipp_failed": step.sipp_failed,
                "journey_failed": step.journey_failed, "failure_reasons": step.failure_reasons,
                "version": version["version"],
                "switch_s": round((new[0] - published_at).total_seconds(), 3) if new else None,
                "old_version_calls_after_publish": len(stale),
                "last_old_version_call_after_publish_s":
                    round((max(stale) - published_at).total_seconds(), 3) if stale else None}

    @property
    def env(self) -> dict[str, str]:
        return {**self.sandbox.env, "HOTLINE_DSN": self.dsn}


def _lines_from(path: Path, offset: int) -> list[str]:
    """The lines written to `path` since it was `offset` bytes long."""
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", errors="replace").splitlines()


def prompt_nodes() -> list[str]:
    """The bench menus' nodes that play a prompt (a condition node costs no ARI request)."""
    document = yaml.safe_load(FLOWS.read_text(encoding="utf-8"))
    return [node_id for flow in document["flows"].values() for node_id, node in flow["nodes"].items()
            if node["type"] != "condition"]


async def run_scale(calls: int) -> dict[str, Any]:
    """P4 from `python -m bench.scale --calls N --json` (another module of the bench), if it is there."""
    if not (REPO / "bench" / "scale.py").exists():
        return {"error": "bench/scale.py is not there yet"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.scale", "--calls", str(calls), "--json",
                                                cwd=REPO, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(600):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"error": "bench.scale took over 600 s"}
    try:  # exit 1 with its JSON: calls failed in it, which its figures say (`failed`)
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        said = (err or out).decode(errors="replace").strip().splitlines()
        return {"error": f"bench.scale exited {proc.returncode} without its JSON: "
                         f"{said[-1][:300] if said else 'nothing said'}"}
    return {**result, "exit_code": proc.returncode}


def _say(text: str) -> None:
    print(f"bench: {text}", flush=True)


@asynccontextmanager
async def sandbox_lock(path: Path = ASTERISK_LOCK) -> AsyncIterator[None]:
    """The sandbox's Asterisk for us alone (its ports are fixed): the lock the end-to-end suites take
    with flock(1). Waited for in a thread; released when the Asterisk part is over, before P4."""
    with path.open("a") as handle:
        if not await asyncio.to_thread(_try_lock, handle.fileno()):
            _say(f"waiting for {path} (another run uses the sandbox's Asterisk)")
            await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


async def bench(config: BenchConfig) -> dict[str, Any]:
    async with sandbox_lock():
        load_at_start = [round(x, 2) for x in os.getloadavg()]  # the machine was busy (others' work) or quiet
        run, reload = await against_asterisk(config)
    _say(f"P4: python -m bench.scale --calls {config.scale_calls}")
    scale = await run_scale(config.scale_calls)
    return {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "host": socket.gethostname(),
            "cpus": os.cpu_count(), "load_average_at_start": load_at_start, "config": {**asdict(config), "out": str(config.out)},
            "steps": [s.as_dict() for s in run.steps], "reload": reload, "scale": scale,
            "goals": [asdict(g) for g in goals(run.steps, scale=scale, reload=reload)],
            "_steps": run.steps}


async def against_asterisk(config: BenchConfig) -> tuple[Bench, dict[str, Any]]:
    """P1, P2, P3 and P5: the sandbox up, the native steps, then the product's and the publish."""
    sandbox = await asyncio.to_thread(bring_up_sandbox)
    try:
        if await _app_connected(sandbox.env):
            raise RuntimeError("a hotline server is already connected to the sandbox (make run?): stop it first")
        dsn = await pg.create_database()
        try:
            with TemporaryDirectory(prefix="hotline-bench-") as tmp:
                work = Path(tmp)
                customers = bench_customers(config.customers)
                callers_file(work / "callers.csv", [c.phone for c in customers])
                run = Bench(config, sandbox, dsn, work, {c.phone: c for c in customers})
                async with run.db() as conn:
                    await install_write_clock(conn)
                await _cli(run.env, "customers", "import", str(customers_csv(work / "customers.csv", customers)))
                await _cli(run.env, "menus", "publish", str(FLOWS), "-m", "bench menus")
                _say(f"native dialplan on line {sandbox.native_line}: rates {list(config.rates)}, {config.step_s:g} s each")
                await run.climb(NATIVE)
                async with serving(run.env, work / "state") as server, aiohttp.ClientSession() as http:
                    run.server, run.http = server, http
                    _say(f"hotline serve on line {PRODUCT_LINE}")
                    try:
                        await run.climb(PRODUCT)
                        _say(f"P5: a menu published during {config.reload_rate} calls/s")
                        reload = await run.reload_under_load()
                    except (RuntimeError, OSError, aiohttp.ClientError, asyncpg.PostgresError) as exc:
                        # The steps so far are still worth their table: said, not lost with a traceback.
                        ended = server.process.returncode
                        why = f"hotline serve exited ({ended})" if ended is not None else f"{type(exc).__name__}: {exc}"
                        _say(f"the product run stopped: {why}; see {server.log}")
                        reload = {"error": f"not run: the product run stopped ({why[:200]})"}
        finally:
            await pg.drop_database(dsn)
    finally:
        if sandbox.asterisk_started:
            await asyncio.to_thread(_sandbox, "asterisk-stop", check=False)
    return run, reload


#: Under a table with a missed goal: why, measured (the profiles), is kept with the code it names.
MISSED_WHY = ("Why the missed goals are missed — where the app's CPU goes per call and per ARI request, with the"
              " profiles, what was cut and what is left: [bench/PROFILE.md](../PROFILE.md).")


def write_results(result: dict[str, Any], out: Path) -> tuple[Path, Path, str]:
    """bench/results/<stamp>.json and .md, and latest.* beside them; returns the paths and the markdown."""
    steps: list[Step] = result.pop("_steps")
    rows = goals(steps, scale=result["scale"], reload=result["reload"])
    markdown = "\n\n".join([
        f"# make bench — {result['measured_at']} on {result['host']} ({result['cpus']} CPUs)",
        f"Rates {result['config']['rates']} calls/s, {result['config']['step_s']:g} s per step. Load average"
        f" (1, 5, 15 min) when it started: {result['load_average_at_start']} — anything but a quiet machine"
        " makes every figure noisy and low.",
        "## Goals", goals_markdown(rows), *([MISSED_WHY] if any(g.met is False for g in rows) else []),
        "## Steps", steps_markdown(steps)]) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    stamp = result["measured_at"].replace(":", "").replace("-", "")
    json_path, md_path = out / f"{stamp}.json", out / f"{stamp}.md"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    for path in (json_path, md_path):
        (out / f"latest{path.suffix}").write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return json_path, md_path, markdown


def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="20,40,60,80,100,120", help="calls per second of each step, in order")
    parser.add_argument("--step-s", type=float, default=20.0, help="seconds of each step")
    parser.add_argument("--reload-rate", type=int, default=40, help="calls per second during the P5 publish")
    parser.add_argument("--customers", type=int, default=3000, help="known callers, called in turn")
    parser.add_argument("--scale-calls", type=int, default=2000, help="concurrent calls of bench.scale (P4)")
    parser.add_argument("--keep-climbing", action="store_true", help="run every rate even after a failed step")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    if not rates or any(r <= 0 for r in rates) or args.step_s <= 0:
        parser.error("--rates must be positive integers and --step-s positive")
    return BenchConfig(rates=rates, step_s=args.step_s, reload_rate=args.reload_rate, out=args.out,
                       customers=args.customers, stop_at_failure=not args.keep_climbing,
                       scale_calls=args.scale_calls)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    result = asyncio.run(bench(config))
    json_path, md_path, markdown = write_results(result, config.out)
    print(markdown)
    _say(f"results: {md_path.relative_to(REPO) if md_path.is_relative_to(REPO) else md_path}, {json_path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
