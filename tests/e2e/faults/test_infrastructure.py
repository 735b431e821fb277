"""The fault matrix, infrastructure faults (issue 13): real SIPp calls into the real sandbox while
the ARI WebSocket drops, PostgreSQL dies or crawls, `hotline serve` is stopped or killed, or
Asterisk restarts. Each case prints one FAULT line (matrix.FaultReport) and fails on any loss:
a journey missing for a call the app took, a caller left in silence, a call cut that need not be.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest

from tests.e2e.faults.conftest import FaultyServer
from tests.e2e.faults.matrix import (
    AppContact,
    CallerEars,
    CallerTrace,
    FaultReport,
    complete_journeys,
    describe,
    place_spread,
    silent_callers,
    unique_callers,
    wait_for_journeys,
)
from tests.support.agents import DemoAgent
from tests.support.sipp import SipCall

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

#: The router's line after each (re)connection: channels still in the app, calls the app knew.
RESYNC = re.compile(r"event=resync live=(\d+) ours=(\d+)")

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


async def report(case: str, faulty: FaultyServer, traces: list[CallerTrace], *, cut: int = 0,
                 note: str = "") -> FaultReport:
    """Count what the callers lived and what the database holds; print the FAULT line."""
    callers = [t.caller for t in traces]
    contact = AppContact.from_events(faulty.server.observer.events)
    owed = [c for c in callers if contact.reached_app(c)]
    found = await wait_for_journeys(faulty.dsn, owed, len(owed), JOURNEY_WAIT_S)
    silent = silent_callers(traces)
    loudest_gap = max((t.longest_silence for t in traces), default=0.0)
    note = f"{note}; " if note else ""
    note += f"longest silence {loudest_gap:.1f} s"
    result = FaultReport(case, placed=len(traces), completed=sum(t.result.ok for t in traces),
                         journeys=complete_journeys({c: found.get(c, []) for c in owed}), silent=len(silent),
                         cut=cut, note=note, reached=len(owed))
    print(result.line())
    for trace in silent:
        print("  silent:", trace)
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
