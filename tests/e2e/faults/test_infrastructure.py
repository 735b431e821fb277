"""The fault matrix, infrastructure faults (issue 13): real SIPp calls into the real sandbox while
the ARI WebSocket drops, PostgreSQL dies or crawls, `hotline serve` is stopped or killed, or
Asterisk restarts. Each case prints one FAULT line (matrix.FaultReport) and fails on any loss:
a journey missing for a call the app served, a caller left in silence, a call cut that need not be.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from agi_app.ami.events import AgentConnect, AgentEvent
from agi_app.db.pool import connection
from tests.e2e.conftest import SANDBOX, Hotline
from tests.e2e.faults.conftest import FaultyServer
from tests.e2e.faults.matrix import (
    SILENCE_S,
    AppContact,
    CallerEars,
    CallerTrace,
    FaultReport,
    Journey,
    complete_journeys,
    describe,
    journeys,
    place_spread,
    silent_callers,
    unique_callers,
    wait_for_journeys,
)
from tests.support.agents import REGISTER_EXPIRES_S, DemoAgent
from tests.support.cli import HOTLINE
from tests.support.sipp import SipCall

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

#: The router's line after each (re)connection: channels still in the app, calls the app knew.
RESYNC = re.compile(r"event=resync live=(\d+) ours=(\d+)")

#: The general menu starts this soon after the answer, whatever the fault (measured ~0.06 s).
FIRST_SOUND_S = 1.0

#: Seconds the slow database adds to every packet either way: past the lookup, start-of-call and
#: database budgets (HOTLINE_LOOKUP_BUDGET_MS, _CALL_START_BUDGET_MS, _DB_BUDGET_MS).
SLOW_DB_S = 1.5

#: Seconds a case waits, after its last call, for the journeys to reach PostgreSQL.
JOURNEY_WAIT_S = 15.0


def menu_caller(caller: str, stay_s: float = 7.0) -> SipCall:
    """Hears the greeting and the main menu, hangs up after `stay_s` without a key."""
    return SipCall(caller, "95000", hangup_after=stay_s, max_duration=40)


def agent_caller(caller: str, stay_s: float = 12.0) -> SipCall:
    """Asks for an agent (0) in the main menu, waits or talks, hangs up after `stay_s`."""
    return SipCall(caller, "95000", steps=[(3.0, "0")], hangup_after=stay_s, max_duration=40)


def mixed_calls(callers: list[str]) -> list[SipCall]:
    """Every third caller asks for an agent; the others stay in the menu."""
    return [agent_caller(c) if i % 3 == 2 else menu_caller(c) for i, c in enumerate(callers)]


async def report(case: str, faulty: FaultyServer, traces: list[CallerTrace], *, owed: list[str] | None = None,
                 cut: list[CallerTrace] | None = None, note: str = "") -> FaultReport:
    """Count what the callers lived and what the database holds; print the FAULT line. `owed`: the
    callers whose journeys are due (default: every caller the app served, and every caller who found
    no app: the dialplan wrote theirs); `cut`: the calls the
    fault cuts by definition, left out of the completed and silent counts."""
    cut_ids = {id(t) for t in cut or ()}
    kept = [t for t in traces if id(t) not in cut_ids]
    if owed is None:  # a call cut in the fallback never ran the dialplan's hangup handler
        contact = AppContact.from_events(faulty.server.observer.events)
        owed = [t.caller for t in traces if contact.reached_app(t.caller)
                or (id(t) not in cut_ids and contact.found_no_app(t.caller))]
    found = await wait_for_journeys(faulty.dsn, owed, len(owed), JOURNEY_WAIT_S)
    silent = silent_callers(kept)
    loudest_gap = max((t.longest_silence for t in kept), default=0.0)
    first = max((t.first_sound for t in kept if t.first_sound is not None), default=0.0)
    note = f"{note}; " if note else ""
    note += f"first sound within {first:.2f} s, longest silence {loudest_gap:.1f} s"
    result = FaultReport(case, placed=len(traces), completed=sum(t.result.ok for t in kept),
                         journeys=complete_journeys({c: found.get(c, []) for c in owed}), silent=len(silent),
                         cut=len(cut_ids), note=note, reached=len(owed))
    print(result.line())
    for trace in kept:
        if trace.silent or trace.longest_silence > SILENCE_S / 2:
            print("  silent:" if trace.silent else "  quiet: ", trace)
    return result


async def test_baseline_without_a_fault(faulty: FaultyServer, ears: CallerEars,
                                        demo_agents: dict[str, DemoAgent]) -> None:
    """The yardstick itself: with no fault every caller hears something all along, completes,
    and has a journey."""
    traces = await place_spread(ears, mixed_calls(unique_callers(1, 6)), per_second=2)
    result = await report("baseline", faulty, traces)
    result.assert_nothing_lost()
    assert all(t.longest_silence < 4 for t in traces), "\n".join(describe(traces))


async def _during(calls: list[SipCall], ears: CallerEars, per_second: float,
                  fault_after_s: float, fault: Callable[[], Awaitable[None]]) -> list[CallerTrace]:
    """Place `calls` at `per_second`; `fault_after_s` after the first, await `fault()`."""
    placing = asyncio.create_task(place_spread(ears, calls, per_second))
    try:
        await asyncio.sleep(fault_after_s)
        await fault()
    except BaseException:
        placing.cancel()
        raise
    return await placing


async def test_ari_websocket_dropped_mid_call(faulty: FaultyServer, ears: CallerEars,
                                              demo_agents: dict[str, DemoAgent]) -> None:
    """The ARI connection dies (every socket through the proxy closed, new ones refused for
    2 s), twice, while calls are in menus and queues: the app reconnects, resyncs the channels
    still in Stasis and carries on; nobody waits in silence, every call it took has its journey."""
    async def drop_twice() -> None:
        for _ in range(2):
            faulty.ari.go_down()
            await asyncio.sleep(2.0)
            faulty.ari.refuse = False
            await asyncio.sleep(3.0)

    traces = await _during(mixed_calls(unique_callers(2, 12)), ears, 2, 2.5, drop_twice)
    # After the start, each reconnect: (channels Asterisk still has in the app, calls the app knew).
    resyncs = [(int(live), int(ours)) for live, ours in RESYNC.findall(faulty.server.log_path.read_text())][1:]
    result = await report("ari_websocket_dropped", faulty, traces, note=f"resyncs (live, ours) {resyncs}")
    result.assert_nothing_lost()
    assert len(resyncs) >= 2, "the app did not reconnect and resync after each drop"
    assert resyncs[0][0] > 0, "no call was in Stasis across the first drop: the case proved nothing"


async def services_of(dsn: str, callers: list[str]) -> dict[str, list[str]]:
    """`service:result` in order, per caller, from the journeys in PostgreSQL."""
    async with connection(dsn) as conn:
        rows = await conn.fetch(
            "SELECT c.caller, s.service || ':' || s.result AS done FROM calls c JOIN call_services s USING (call_id) "
            "WHERE c.caller = ANY($1::text[]) ORDER BY c.caller, s.seq", callers)
    found: dict[str, list[str]] = {c: [] for c in callers}
    for row in rows:
        found[row["caller"]].append(row["done"])
    return found


def agent_answered(events: list[AgentEvent], contact: AppContact, caller: str) -> bool:
    channels = set(contact.channels.get(caller, ()))
    return any(isinstance(e, AgentConnect) and e.unique_id in channels for e in events)


#: A demo bank customer, a card account of theirs, and a PIN that is not theirs. With the database
#: down the number finds nobody: main menu 1 (accounts), 1 (balance), then "by account number" (1),
#: the account number, the PIN.
PIN_CALLER, PIN_ACCOUNT, WRONG_PIN = "13600136000", "6222020200001234", "000000"
PIN_STEPS = [(4.0, "1"), (3.0, "1"), (3.0, "1"), (3.0, PIN_ACCOUNT + "#"), (3.0, WRONG_PIN)]


def agent_callers(traces: list[CallerTrace]) -> list[str]:
    return [t.caller for t in traces if t.result.digits_sent == "0"]


def log_count(server: Hotline, event: str) -> int:
    return server.log_path.read_text().count(f"event={event} ")


@pytest.mark.parametrize("fault", ["down", "slow"])
async def test_postgresql_down_or_slow(fault: str, faulty: FaultyServer, ears: CallerEars,
                                       demo_agents: dict[str, DemoAgent], agent_events: list[AgentEvent]) -> None:
    """PostgreSQL dies (open connections dropped, new ones refused) or crawls (SLOW_DB_S on every
    packet: past every budget) before the calls and recovers after them: every caller hears the
    general menu at once and can reach an agent; the journeys wait on disk and reach the database
    when it is back; a wrong PIN is not accepted meanwhile."""
    calls = [*mixed_calls(unique_callers(3 if fault == "down" else 4, 10)),
             SipCall(PIN_CALLER, "95000", steps=PIN_STEPS, hangup_after=8, max_duration=60)]
    if fault == "down":
        faulty.db.go_down()
    else:
        faulty.db.delay = SLOW_DB_S
    try:
        traces = await place_spread(ears, calls, per_second=2)
    finally:
        faulty.db.refuse, faulty.db.delay = False, 0.0
    result = await report(f"postgresql_{fault}", faulty, traces)
    result.assert_nothing_lost()
    assert log_count(faulty.server, "journey_spilled") and log_count(faulty.server, "journey_replayed"), \
        "the journeys did not go through the spill files"
    assert max(t.first_sound or 99 for t in traces) < FIRST_SOUND_S, "\n".join(describe(traces))
    contact = AppContact.from_events(faulty.server.observer.events)
    assert all(agent_answered(agent_events, contact, c) for c in agent_callers(traces[:-1]))
    heard = faulty.server.observer.heard(PIN_CALLER)
    assert "sound:hotline/zh/enter_pin" in heard, heard  # the PIN was asked for: the case tested something
    assert "sound:hotline/zh/your_balance_is" not in heard, heard
    assert "authenticate:ok" not in (await services_of(faulty.dsn, [PIN_CALLER]))[PIN_CALLER]


async def after_restart(case: int, faulty: FaultyServer, ears: CallerEars) -> list[CallerTrace]:
    """A few calls to the restarted server: it picks up (callers complete, journeys owed)."""
    return await place_spread(ears, mixed_calls(unique_callers(case, 3)), per_second=2)


async def test_serve_sigterm_under_load(faulty: FaultyServer, ears: CallerEars,
                                        demo_agents: dict[str, DemoAgent]) -> None:
    """SIGTERM while calls arrive: calls in progress finish under the drain's grace, new ones go to
    the dialplan fallback (apology, general agent), none is cut; a restarted server takes calls again."""
    server = faulty.server
    stopped: list[int] = []

    async def sigterm() -> None:
        stopped.append(await server.stop_serve())  # waits until it exits: the drain

    traces = await _during(mixed_calls(unique_callers(5, 16)), ears, 2, 3.5, sigterm)
    await server.start_serve()
    traces += await after_restart(6, faulty, ears)
    contact = AppContact.from_events(server.observer.events)
    fallback = sum(contact.went_to_fallback(t.caller) for t in traces)
    result = await report("serve_sigterm", faulty, traces, note=f"exit {stopped}, {fallback} to the fallback")
    result.assert_nothing_lost()
    assert stopped == [0], server.log_path.read_text()[-3000:]
    assert fallback, "no call arrived while the server drained: the case proved nothing"
    assert all(contact.reached_app(t.caller) for t in traces[-3:]), "the restarted server took no calls"


async def test_serve_sigkill_under_load(faulty: FaultyServer, ears: CallerEars,
                                        demo_agents: dict[str, DemoAgent]) -> None:
    """SIGKILL while calls arrive, and a restart as a supervisor would (at once): calls arriving
    meanwhile go to the fallback; the restarted server finds the orphaned channels still in Stasis
    and sends them to the fallback too; nobody is left in silence, none is cut. Journeys are owed
    for the calls placed after the restart (the killed server's memory is gone) and for those that
    found no app (the dialplan wrote them; the restarted server imports them)."""
    server = faulty.server
    restarted_at: list[float] = []

    async def sigkill() -> None:
        assert server.server is not None
        server.server.kill()
        await asyncio.to_thread(server.server.wait)
        await server.start_serve()
        restarted_at.append(time.monotonic())

    traces = await _during(mixed_calls(unique_callers(7, 16)), ears, 2, 3.5, sigkill)
    traces += await after_restart(8, faulty, ears)
    contact = AppContact.from_events(server.observer.events)
    late = [t for t in traces if t.started > restarted_at[0]]
    no_app = [t.caller for t in traces if contact.found_no_app(t.caller)]  # the dialplan wrote theirs
    owed = [t.caller for t in late if contact.reached_app(t.caller)] + no_app
    killed = [t.caller for t in traces if t.started < restarted_at[0] and contact.reached_app(t.caller)]
    fallback = sum(contact.went_to_fallback(t.caller) for t in traces)
    orphans = sum(int(n) for n in re.findall(r"event=resync live=(\d+)", server.log_path.read_text())[-1:])
    result = await report("serve_sigkill", faulty, traces, owed=owed,
                          note=f"{fallback} to the fallback ({len(no_app)} finding no app), {orphans} orphaned in "
                               f"Stasis; journeys owed after the restart and for the callers finding no app; "
                               f"{len(killed)} calls the killed server held")
    held = await left_open_closed(faulty.dsn, killed)
    still_open = sorted(j.call_id for rows in held.values() for j in rows if not j.ended)
    print(f"  {len(killed)} calls the killed server held: {complete_journeys(held)} journeys closed by the restarted"
          f" server (outcome error), {len(still_open)} still open, {len(killed) - len(held)} never written"
          " (their start still in the killed server's memory)")
    result.assert_nothing_lost()
    assert not still_open, f"journeys the killed server left open stay open: {still_open}"
    assert fallback, "no call went to the fallback: the case proved nothing"


async def left_open_closed(dsn: str, callers: list[str], timeout: float = 15.0) -> dict[str, list[Journey]]:
    """The journeys of `callers` once none is open any more (the restarted server closes those its
    killed predecessor left open, in the background), or as they are at `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = await journeys(dsn, callers)
        if all(j.ended for rows in found.values() for j in rows) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def sandbox(command: str) -> None:
    """`scripts/sandbox <command>` without blocking the loop the calls run on."""
    proc = await asyncio.create_subprocess_exec(SANDBOX, command, stdout=asyncio.subprocess.DEVNULL)
    assert await asyncio.wait_for(proc.wait(), 90) == 0, f"scripts/sandbox {command} failed"


async def alert_changes(faulty: FaultyServer, rule: str, since: datetime) -> list[str]:
    """The changes of `rule`'s alerts since `since`, oldest first, from `hotline alerts list` on the
    database directly, in a thread: the proxies run on this loop."""
    listed = await asyncio.to_thread(subprocess.run, [HOTLINE, "alerts", "list", "--json"], capture_output=True,
                                     text=True, timeout=60, env={**faulty.server.env, "HOTLINE_DSN": faulty.dsn})
    assert listed.returncode == 0, listed.stderr
    return [e["change"] for e in reversed(json.loads(listed.stdout))
            if e["rule"] == rule and datetime.fromisoformat(e["at"]) >= since]


async def test_asterisk_restart_under_load(faulty: FaultyServer, ears: CallerEars,
                                           demo_agents: dict[str, DemoAgent]) -> None:
    """Asterisk stopped and started while calls arrive: the calls it held, and those placed while
    it was down, are cut by definition (counted as cut, not silent); the app reconnects, raises the
    ARI alert and clears it; calls after the restart are served; no other caller is left in silence,
    and no call the app served loses its journey."""
    server, since, window = faulty.server, datetime.now(UTC), []

    async def restart() -> None:
        window.append(time.monotonic())
        await sandbox("asterisk-stop")
        await sandbox("asterisk-start")
        window.append(time.monotonic())

    traces = await _during([menu_caller(c) for c in unique_callers(9, 12)], ears, 2, 3.5, restart)
    for agent in demo_agents.values():  # their registrations died with Asterisk: the next tests need them
        await agent.register(REGISTER_EXPIRES_S)
    for _ in range(60):  # the app connected at its start, then again after the restart
        if log_count(server, "ari_connected") >= 2:
            break
        await asyncio.sleep(0.5)
    assert log_count(server, "ari_connected") >= 2, "the app did not reconnect to the restarted Asterisk"
    traces += await place_spread(ears, [menu_caller(c) for c in unique_callers(10, 4)], per_second=2)

    def was_cut(trace: CallerTrace) -> bool:
        """Up on the Asterisk that stopped (answered before it was back, not ended before it
        stopped), or refused while it was down (SIPp's INVITE met a closed port: failed at once)."""
        if trace.answered_at is None:
            return window[0] <= trace.started <= window[1] and trace.result.duration < 1
        return trace.answered_at < window[1] and (trace.ended_at is None or trace.ended_at >= window[0])

    result = await report("asterisk_restart", faulty, traces, cut=[t for t in traces if was_cut(t)],
                          note=f"down {window[1] - window[0]:.1f} s")
    result.assert_nothing_lost(allowed_cut=result.cut)
    contact = AppContact.from_events(server.observer.events)
    assert all(contact.reached_app(t.caller) and t.result.ok for t in traces[-4:]), "\n".join(describe(traces[-4:]))
    for _ in range(20):  # the alert evaluator writes every HOTLINE_ALERT_EVAL_MS
        if (changes := await alert_changes(faulty, "ari_disconnected", since))[-1:] == ["cleared"]:
            break
        await asyncio.sleep(0.5)
    assert "raised" in changes and changes[-1] == "cleared", changes
