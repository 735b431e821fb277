"""`hotline serve`: wiring of the process — database, ARI, call engine, hot reload, signals.

Start-up fails fast and clearly when Asterisk cannot be reached, or when no menu version is
published. While PostgreSQL is down it starts from the menu version cached on disk
(`serve/menu_cache.py`), every caller unknown, and recovers when the database returns; with no
usable cache it fails. SIGTERM/SIGINT drain: new calls go to the dialplan fallback, calls in
progress get `shutdown_grace_s` to finish and are then handed to the dialplan too — none is cut.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg

from agi_app.agi.hooks import AgiHooks
from agi_app.agi.server import AgiServer
from agi_app.ami.client import AmiClient
from agi_app.ami.queues import AmiQueueState
from agi_app.analytics.alerts import AlertRules
from agi_app.ari.client import AriClient, AriError
from agi_app.ari.router import EventRouter, EventsLost
from agi_app.banking.auth import LockoutPolicy
from agi_app.banking.otp import OtpPolicy
from agi_app.banking.risk import RiskRules, RuleGuard
from agi_app.banking.security_services import SecurityServices, register_security_services
from agi_app.banking.services import register_money_services
from agi_app.budget import settle, within
from agi_app.caller_facts import CallerFacts
from agi_app.centre.advisor import QueueAdvisor
from agi_app.centre.callbacks import CallbackBook
from agi_app.centre.complaints import register_complaint_services
from agi_app.centre.queues import QueueState
from agi_app.config import Settings, host_port
from agi_app.db.journey_spill import spill_dir_for
from agi_app.db.journey_writer import PgJourneySink
from agi_app.db.pool import DatabaseUnavailable, create_pool
from agi_app.db.repositories import calendar, customers, menus, operations, queue_history
from agi_app.db.repositories.banking import PgBank
from agi_app.db.repositories.complaints import PgComplaints
from agi_app.db.repositories.security import PgSecurity
from agi_app.db.start_facts_cache import StartFactsCache
from agi_app.directory.facts import caller_facts
from agi_app.directory.models import Customer
from agi_app.directory.service import Directory
from agi_app.engine.call import HotlineFlow
from agi_app.engine.registry import CallRegistry
from agi_app.engine.start_facts import StartFactsLoader
from agi_app.flows.loader import FlowFileError, load_document, load_file
from agi_app.flows.model import FlowSet
from agi_app.flows.queueing import QueueDesk
from agi_app.flows.services import ServiceRegistry
from agi_app.logs import log_event
from agi_app.media.resolver import MediaResolver, silent_sounds
from agi_app.media.tts import SpeechSynthesizer
from agi_app.monitoring.alerts import AlertingJourneySink, AlertMonitor, thresholds
from agi_app.monitoring.hooks import ari_trace, query_observer, timed_lookup
from agi_app.monitoring.journey import MeteredJourneySink
from agi_app.monitoring.live import LiveView
from agi_app.monitoring.metrics import HotlineMetrics
from agi_app.monitoring.publisher import LivePublisher, this_server
from agi_app.monitoring.service import Monitoring
from agi_app.serve.callbacks import CallbackDispatcher
from agi_app.serve.campaigns import CampaignDialler
from agi_app.serve.dialplan_journeys import DialplanJourneyImporter
from agi_app.serve.live import FlowDrawing, LiveSnapshot
from agi_app.serve.menu_cache import MenuCache, MenuCacheError
from agi_app.serve.orphans import close_orphaned_journeys
from agi_app.serve.queue_tracker import QueueTracker
from agi_app.serve.reloader import ChangeListener, MenuReloader

log = logging.getLogger("hotline.serve")

class StartupError(Exception):
    """The server cannot start; the message says what is missing and what to do.

    `unreachable` tells a dependency that is down (PostgreSQL, Asterisk) from a setup problem
    (no published menus, invalid menus), for the exit code."""

    def __init__(self, message: str, *, unreachable: bool = True) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def build_services(settings: Settings | None = None,
                   pool: Callable[[], asyncpg.Pool] | None = None) -> ServiceRegistry:
    """Every business service `process` nodes may call (domains register theirs here). Without a
    pool (validation, offline simulation) the money services exist by name and fail if called:
    a rehearsal must not move the stand-in bank's money."""
    settings = settings or Settings()
    registry = ServiceRegistry()
    risk = RuleGuard(PgSecurity(pool), risk_rules(settings)) if pool else None
    register_money_services(registry, PgBank(pool or _no_bank), settings, risk)
    register_security_services(registry, security_services(settings, pool or _no_bank))
    register_complaint_services(registry, PgComplaints(pool or _no_bank), budget_s=settings.db_budget_s)
    return registry


def security_services(settings: Settings, pool: Callable[[], asyncpg.Pool]) -> SecurityServices:
    """PIN check, one-time codes and PIN change over PostgreSQL, with the Settings' policies."""
    store = PgSecurity(pool)

    async def facts(customer_id: str) -> CallerFacts | None:
        async def lookup() -> Customer | None:
            async with pool().acquire() as conn:
                return await customers.get(conn, customer_id)

        found = await within(settings.db_budget_s, lookup(), what="customer_facts")
        return caller_facts(found, today=date.today(), bill_due_days=FlowSet.bill_due_days) if found else None  # the menus default

    lockout = LockoutPolicy(settings.pin_max_failures, timedelta(minutes=settings.pin_lockout_minutes))
    otp = OtpPolicy(timedelta(seconds=settings.otp_ttl_s), settings.otp_max_attempts)
    return SecurityServices(store, store, store, RuleGuard(store, risk_rules(settings)), facts, lockout, otp)


def risk_rules(settings: Settings) -> RiskRules:
    return RiskRules(window=timedelta(hours=settings.risk_window_hours),
                     max_pin_changes=settings.risk_max_pin_changes, max_pin_failures=settings.risk_max_pin_failures,
                     new_payee_window=timedelta(hours=settings.risk_new_payee_hours),
                     large_transfer=Decimal(settings.risk_large_transfer))


def _no_bank() -> asyncpg.Pool:
    raise RuntimeError("no database for the banking services here")


def media_resolver(settings: Settings) -> MediaResolver:
    speech = (SpeechSynthesizer(Path(settings.sounds_root), timeout=settings.speech_budget_s)
              if settings.sounds_root else None)
    return MediaResolver(speech, silent=silent_sounds(settings.prompts_folder() / "prompts.yaml"))


def start_facts(settings: Settings, pool: asyncpg.Pool, metrics: HotlineMetrics | None = None, *,
                cache: StartFactsCache | None = None) -> StartFactsLoader:
    """What each call reads at its start, each under its budget (the caller lookup timed into
    `metrics`, when given): the calendar, emergency and notices from `cache` when given (a running
    server's, kept by its change listener), else read from the database's repositories per call."""
    def lookup(phone: str) -> Awaitable[Customer | None]:
        return customers.find_by_phone(pool, phone)

    directory = Directory(timed_lookup(lookup, metrics) if metrics else lookup, budget_s=settings.lookup_budget_s)
    if cache is not None:
        return StartFactsLoader(directory, budget_s=settings.call_start_budget_s, calendar=cache.calendar,
                                emergency=cache.emergency, notices=cache.notices)
    return StartFactsLoader(directory, budget_s=settings.call_start_budget_s,
                            calendar=lambda line: calendar.load_calendar(pool, line),
                            emergency=lambda line, at: operations.live_emergency(pool, line, at),
                            notices=lambda line, day: operations.valid_notices(pool, line, day))


def call_handler(settings: Settings, pool: asyncpg.Pool, current_flows: Callable[[], FlowSet],
                 services: ServiceRegistry, metrics: HotlineMetrics | None = None,
                 desk: QueueDesk | None = None, *, cache: StartFactsCache | None = None) -> HotlineFlow:
    return HotlineFlow(start_facts(settings, pool, metrics, cache=cache), current_flows, media_resolver(settings),
                       services, desk)


def ami_client(settings: Settings) -> AmiClient | None:
    """The AMI connection for live queue state, when HOTLINE_AMI_USER and _PASSWORD are set (not
    started: the server starts it once everything else is up, and does not wait for the login)."""
    return AmiClient.from_settings(settings) if settings.ami_user and settings.ami_password else None


def queue_desk(settings: Settings, pool: asyncpg.Pool, state: QueueState,
               book: CallbackBook | None = None) -> QueueAdvisor:
    """What a call hears before a queue transfer: position and wait from `state` and the queue legs'
    handle times, a callback offered above the Settings' wait when `book` can book one."""
    async def recent(group: str) -> list[int]:
        return await queue_history.recent_talk_times(pool, group, settings.queue_handle_window)

    return QueueAdvisor(state, budget_s=settings.queue_advice_budget_s, recent_talk_times=recent, book=book,
                        wrapup_s=settings.queue_wrapup_s, default_handle_s=settings.queue_default_handle_s,
                        callback_offer_wait_s=settings.callback_offer_wait_s,
                        callback_key_timeout_s=settings.callback_key_s,
                        book_budget_s=settings.callback_book_budget_s)


async def initial_flows(settings: Settings, pool: asyncpg.Pool, services: ServiceRegistry, *,
                        cache: MenuCache | None = None) -> FlowSet:
    """The flow file given with --flows-file, else the active published version (kept in `cache`,
    for a start during an outage); DatabaseUnavailable if PostgreSQL does not answer in time."""
    try:
        if settings.flows_file:
            return load_file(Path(settings.flows_file), services=services.names())[0]
        try:
            stored = await within(settings.db_budget_s, menus.get_active(pool), what="active_menus")
        except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.OperatorInterventionError,
                asyncpg.InsufficientResourcesError) as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL to read the active menu version:"
                                      f" {type(exc).__name__}: {exc}") from exc
        if stored is None:
            raise StartupError("no menu version is published: run `hotline menus publish FILE` first",
                               unreachable=False)
        flows = load_document(stored.document, file=f"version {stored.version}", services=services.names(),
                              version=stored.version)[0]
        if cache is not None:
            await cache.save(stored.version, stored.document)
        return flows
    except FlowFileError as exc:
        raise StartupError(f"menus are invalid, refusing to serve them:\n{exc}", unreachable=False) from exc


@dataclass
class Server:
    """The running pieces, kept together so tests can start and stop a real server in-process."""

    settings: Settings
    pool: asyncpg.Pool
    client: AriClient
    sink: PgJourneySink
    calls: CallRegistry
    router: EventRouter
    flows: FlowSet
    reloader: MenuReloader | None = None
    listener: ChangeListener | None = None
    facts: StartFactsCache | None = None  # calendar, emergency, notices in memory (the listener keeps it)
    callbacks: CallbackDispatcher | None = None
    campaigns: CampaignDialler | None = None
    ami: AmiClient | None = None  # live queue state (and events, for the queue tracker)
    agi: AgiServer | None = None
    monitoring: Monitoring | None = None
    alerts: AlertMonitor | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings, *, flows: FlowSet | None = None,
                    services: ServiceRegistry | None = None) -> Server:
        settings.require("dsn", "ari_user", "ari_password")
        started_at = datetime.now(UTC)  # a journey started before is not this server's
        ami = ami_client(settings)  # a bad HOTLINE_AMI_URL fails here, before anything opens
        host_port("agi_listen", settings.agi_listen)  # a bad HOTLINE_AGI_LISTEN fails before anything opens
        monitoring = Monitoring(settings)
        metrics = monitoring.metrics
        services = services or build_services(settings, lambda: pool)
        hot_reload = flows is None and not settings.flows_file
        cache = MenuCache(Path(settings.state_dir)) if hot_reload else None
        outage: DatabaseUnavailable | None = None
        try:
            try:
                pool = await create_pool(settings.dsn, budget_s=settings.db_budget_s,
                                         on_connect=query_observer(metrics))
            except DatabaseUnavailable as exc:
                if cache is None:
                    raise
                outage = exc  # start from the cached menus; this pool connects once PostgreSQL is back
                pool = await create_pool(settings.dsn, budget_s=settings.db_budget_s, lazy=True,
                                         on_connect=query_observer(metrics))
        except Exception as exc:
            raise StartupError(str(exc)) from exc
        client = AriClient(settings.ari_url, settings.ari_user, settings.ari_password, settings.ari_app,
                           timeout=settings.ari_budget_s, handshake_timeout=settings.ari_handshake_s,
                           trace_configs=[ari_trace(metrics)])
        await client.open()
        try:
            info = await client.asterisk_info()
            if flows is None and outage is None:
                try:
                    flows = await initial_flows(settings, pool, services, cache=cache)
                except DatabaseUnavailable as exc:
                    outage = exc
            if flows is None:  # PostgreSQL is down: serve what this host served last, if it can be trusted
                assert cache is not None and outage is not None
                try:
                    flows = await cache.load(services=services.names())
                except MenuCacheError as exc:
                    raise StartupError(f"{outage}; {exc}") from exc
                log_event(log, "serve_degraded", level=logging.WARNING, reason="database_unreachable",
                          menu_version=flows.version, source="cache", error=type(outage.__cause__).__name__,
                          callers="unknown")
        except (AriError, StartupError) as exc:
            await client.close()
            await pool.close()
            if isinstance(exc, AriError):
                raise StartupError(f"cannot reach Asterisk ARI at {settings.ari_url}: {exc}") from exc
            raise
        asterisk = AriClient.asterisk_identity(info)
        sink = PgJourneySink(pool, budget_s=settings.db_budget_s, spill_dir=spill_dir_for(settings.state_dir),
                             retry_for_s=settings.journey_retry_s, capacity=settings.journey_queue_max,
                             asterisk=asterisk)
        sink.start()
        if ami is not None:
            ami.start()  # no wait: until it logs in, callers are transferred without an announcement
        server: Server
        callbacks = CallbackDispatcher(client, pool, settings)
        desk = queue_desk(settings, pool, AmiQueueState(ami), callbacks.book) if ami is not None else None
        facts = StartFactsCache(pool, budget_s=settings.db_budget_s)
        handler = call_handler(settings, pool, lambda: server.flows, services, metrics, desk, cache=facts)
        live = LiveView()
        rules = AlertRules(thresholds(settings), lambda: server.flows.lines)
        tee = AlertingJourneySink(MeteredJourneySink(sink, metrics, lambda: server.flows.lines, live), rules)
        calls = CallRegistry(handler, tee, settings)
        campaigns = CampaignDialler(client, pool, settings, media_resolver(settings))
        router = EventRouter(client, calls, resync_settle_s=settings.resync_settle_s, callbacks=callbacks.on_event,
                             campaigns=campaigns.on_event, prompts=metrics.prompt_clock)
        server = cls(settings, pool, client, sink, calls, router, flows, monitoring=monitoring, callbacks=callbacks,
                     campaigns=campaigns, facts=facts)
        server._tasks.append(asyncio.create_task(callbacks.run(), name="callbacks"))
        server._tasks.append(asyncio.create_task(campaigns.run(), name="campaigns"))
        if asterisk is not None:
            server._tasks.append(asyncio.create_task(
                close_orphaned_journeys(pool, asterisk, started_at, budget_s=settings.db_budget_s * 5),
                name="orphan-journeys"))
        if settings.dialplan_journeys_dir:  # calls the dialplan ran without us (fallback, line 95002)
            importer = DialplanJourneyImporter(pool, Path(settings.dialplan_journeys_dir), asterisk=asterisk,
                                               every_s=settings.dialplan_journeys_every_s,
                                               budget_s=settings.db_budget_s * 5)
            server._tasks.append(asyncio.create_task(importer.run(), name="dialplan-journeys"))
        server.alerts = AlertMonitor(pool, rules, metrics, server_id=this_server(settings.server_id), every_s=settings.alert_eval_s,
                                     budget_s=settings.db_budget_s)
        server._tasks.append(asyncio.create_task(server.alerts.run(), name="alerts"))
        if ami is not None:  # app_queue's events complete each call's queue leg
            tracker = QueueTracker(pool, budget_s=settings.db_budget_s)
            server._tasks.append(asyncio.create_task(tracker.run(ami), name="queue-tracker"))
        server.ami = ami
        if hot_reload:
            server.reloader = MenuReloader(pool, lambda: server.flows, server.swap_flows,
                                           services=services.names(), budget_s=settings.reload_budget_s, cache=cache,
                                           degraded=outage is not None)
        server.listener = ChangeListener(settings.dsn, budget_s=settings.reload_budget_s, reloader=server.reloader,
                                         facts=facts)
        server._tasks.append(asyncio.create_task(server.listener.run(), name="change-listener"))
        await server._start_monitoring(monitoring, live)
        server._start_agi(start_facts(settings, pool, metrics, cache=facts))  # its lookups timed like the calls'
        log_event(log, "serve_started", app=settings.ari_app, ari=settings.ari_url,
                  asterisk=info.get("system", {}).get("version"), menu_version=flows.version,
                  hot_reload="on" if hot_reload else "off")
        return server

    async def _start_monitoring(self, monitoring: Monitoring, live: LiveView) -> None:
        """The live state Prometheus reads at each scrape, then the endpoint and the database probe,
        and the live view published for `hotline monitor` and the wallboard."""
        metrics = monitoring.metrics
        metrics.watch_calls_in_progress(lambda: len(self.calls.sessions))
        metrics.watch_menu_version(lambda: self.flows.version)
        metrics.watch_journey_backlog(lambda: self.sink.backlog, lambda: self.sink.spill_files)
        peers: dict[str, Callable[[], bool]] = {"ari": lambda: self.client.events_connected}
        if (ami := self.ami) is not None:
            peers["ami"] = lambda: ami.connected
        for peer, up in peers.items():
            metrics.watch_connection(peer, up)

        def connections() -> dict[str, bool]:
            database = monitoring.probe is not None and monitoring.probe.up
            return {peer: up() for peer, up in peers.items()} | {"database": database}

        snapshot = LiveSnapshot(live, self.calls, lambda: self.flows.version, connections, self.ami,
                                ami_budget_s=self.settings.live_budget_s)
        publisher = LivePublisher(self.pool, snapshot, server_id=this_server(self.settings.server_id), every_s=self.settings.live_publish_s,
                                  budget_s=self.settings.live_budget_s, stale_s=self.settings.live_stale_s)
        await monitoring.start(database=lambda: self.pool.fetchval("SELECT 1"), live=publisher,
                               flow_svg=FlowDrawing(lambda: self.flows, budget_s=self.settings.graph_render_s))

    def _start_agi(self, facts: StartFactsLoader) -> None:
        """The dialplan's FastAGI hooks on HOTLINE_AGI_LISTEN, deciding from the same start facts
        and menus as the calls; listening as soon as the address is free (`AgiServer.keep_trying`)."""
        self.agi = AgiServer.from_settings(AgiHooks(facts, lambda: self.flows), self.settings)
        self._tasks.append(asyncio.create_task(self.agi.keep_trying(), name="agi-listen"))

    def swap_flows(self, flows: FlowSet) -> None:
        self.flows = flows

    async def run(self, shutdown: asyncio.Event) -> None:
        """Serve until `shutdown` is set, then drain calls and close everything.

        Raises `EventsLost` when the application's events stop reaching us (another server took
        the application over, or the event reader failed): the calls, deaf from then on, are handed
        to the dialplan at once. A failed cleanup step is raised too: shutdown tells the truth.
        """
        stop_events = asyncio.Event()
        events = asyncio.create_task(self.router.run(stop_events), name="ari-events")
        waiter = asyncio.create_task(shutdown.wait(), name="shutdown-signal")

        def ended_on_its_own() -> EventsLost | None:
            if not events.done() or events.cancelled():
                return None
            failure = events.exception()
            if failure is None and stop_events.is_set():
                return None  # we stopped it
            lost = failure if isinstance(failure, EventsLost) else EventsLost(f"the ARI event stream ended: {failure!r}")
            log_event(log, "events_lost", level=logging.ERROR, error=str(lost), calls=len(self.calls.sessions),
                      calls_to="fallback")
            return lost

        try:
            await asyncio.wait({events, waiter}, return_when=asyncio.FIRST_COMPLETED)
            lost = ended_on_its_own()
            if lost is not None:  # nobody hears these callers any more: no grace
                await self.calls.drain(0, reason="replaced" if lost.replaced else "events_lost")
            else:
                await self.calls.drain(self.settings.shutdown_grace_s)
            stop_events.set()
            await asyncio.wait({events}, timeout=5)
            lost = lost or ended_on_its_own()  # it may have failed during the drain
        finally:
            waiter.cancel()
            events.cancel()
            try:
                await asyncio.wait({waiter, events})  # ours: not left running; our own cancellation propagates
            finally:
                await self.close()
        if lost is not None:
            raise lost

    async def close(self) -> None:
        """Stop the reloader, the journey sink, the ARI client and the pool. Each step runs even if
        an earlier one failed; the first failure (a cancellation of our caller first) is raised after."""

        async def stop_tasks() -> None:
            await stop_all(self._tasks, within_s=self.settings.task_stop_s)
            for task in self._tasks:  # one that died earlier: said now, stopping it did not fail
                if not task.cancelled() and (failure := task.exception()) is not None:
                    log_event(log, "task_failed", level=logging.ERROR, task=task.get_name(),
                              error=type(failure).__name__, detail=str(failure)[:200])

        async def settle_abandoned() -> None:  # work cut at its budget lets go of its connections
            if left := await settle(self.settings.shutdown_grace_s):
                log_event(log, "abandoned_work_left", level=logging.WARNING, tasks=left)

        failures: list[BaseException] = []
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("background_tasks", stop_tasks), *([("start_facts", self.facts.close)] if self.facts else []),
            *([("monitoring", self.monitoring.close)] if self.monitoring else []), ("journey_sink", self.sink.close),
            ("ari_client", self.client.close), ("abandoned_work", settle_abandoned), ("database_pool", self.pool.close)]
        if self.ami is not None:
            steps.append(("ami_client", self.ami.close))
        if self.agi is not None:  # early: the dialplan takes its defaults while the rest closes
            steps.insert(1, ("agi_server", self.agi.close))
        for step, action in steps:
            try:
                await action()
            except asyncio.CancelledError as exc:
                failures.insert(0, exc)  # our caller's: re-raised once everything is closed
            except Exception as exc:  # noqa: BLE001 - logged, the next steps still run, then raised
                log_event(log, "close_failed", level=logging.ERROR, step=step, error=type(exc).__name__,
                          detail=str(exc)[:200])
                failures.append(exc)
        log_event(log, "serve_stopped", clean="no" if failures else None)
        if failures:
            raise failures[0]


async def stop_all(tasks: list[asyncio.Task[None]], *, within_s: float) -> None:
    """Cancel `tasks` and wait until they end. One still running after `within_s` has lost its
    cancellation (or is stuck in its cleanup): it is named in the log and cancelled again, every
    `within_s` — a task that lost one cancellation ends at the next."""
    for task in tasks:
        task.cancel()
    pending = {task for task in tasks if not task.done()}
    while pending:
        _, pending = await asyncio.wait(pending, timeout=within_s)  # not suppress(CancelledError): ours
        for task in pending:
            log_event(log, "task_stuck", level=logging.ERROR, task=task.get_name(), waited_s=within_s)
            task.cancel()


def settle_heap() -> None:
    """Keep what start-up made — modules, menus, templates, pools, clients, all living as long as
    the process — out of the garbage collector's full collections from now on. Each full
    collection walks every object the process holds and stops every call meanwhile: with 2,000
    calls in progress that was ~200 ms, past the call-start budgets (bench.scale). Once per process,
    once started (`hotline serve`; a test process starting many servers would keep them all)."""
    gc.collect()
    gc.freeze()


async def serve_forever(settings: Settings) -> None:
    server = await Server.start(settings)
    settle_heap()
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.set)
    await server.run(shutdown)
