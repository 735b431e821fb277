"""The fault matrix, caller faults (issue 13): real SIPp callers who hang up at every node type,
flood the keypad at a menu and during secure input, hammer one menu a hundred at a time, and call
while a new menu version is published. Each case prints one FAULT line (matrix.FaultReport) and
fails on any loss: a journey missing, a caller left in silence (heard at the caller), a call failed
— and, for hang-ups, anything left behind in Asterisk or in the server.

The cases' lines and flows are tests/e2e/faults/caller_flows.yaml, published beside the demo menus.
"""

from __future__ import annotations

import asyncio
import random
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from agi_app.config import Settings
from agi_app.db.pool import connection
from agi_app.db.repositories.calls import list_calls
from tests.e2e.conftest import Hotline
from tests.e2e.faults.matrix import (
    CallerEars,
    CallerTrace,
    FaultReport,
    complete_journeys,
    describe,
    place_spread,
    place_traced,
    silent_callers,
    unique_callers,
    wait_for_journeys,
)
from tests.support.demo import demo_document
from tests.support.dtmf_pcap import dtmf_pcap_bytes
from tests.support.sipp import SPEAK, SipCall

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

CASE_FLOWS = Path(__file__).with_name("caller_flows.yaml")
NODE_TYPES_LINE, HAMMER_LINE, FLOOD_MENU_LINE, FLOOD_SECURE_LINE = "95070", "95071", "95072", "95073"

#: Seconds a case waits, after its last call, for the journeys to reach PostgreSQL.
JOURNEY_WAIT_S = 15.0
#: Seconds the hang-up case gives Asterisk and the server to let go of everything a call held.
LEFTOVER_WAIT_S = 10.0


# ----------------------------------------------------------------------------- the cases' menus


def case_document(*, hammer_prompt: str = "menu_main") -> dict[str, Any]:
    """The demo menus (2 s menu timeouts, as the e2e session publishes them) plus the cases' lines
    and flows; `hammer_prompt` is the sound of the hammered menu (a new version told apart)."""
    doc = demo_document(timeout=2)
    cases = yaml.safe_load(CASE_FLOWS.read_text(encoding="utf-8"))
    cases["flows"]["hammer"]["nodes"]["menu"]["prompt"] = f"{{{{ sound('{hammer_prompt}') }}}}"
    doc["lines"].update(cases["lines"])
    doc["destinations"].update(cases["destinations"])
    doc["flows"].update(cases["flows"])
    return doc


async def publish(hotline: Hotline, name: str, **kw: str) -> tuple[int, float]:
    """Publish the cases' menus; the version and the time.monotonic() the CLI returned."""
    path = hotline.tmp / name
    path.write_text(yaml.safe_dump(case_document(**kw), allow_unicode=True, sort_keys=False), encoding="utf-8")
    done = await asyncio.to_thread(hotline.cli, "menus", "publish", str(path), "-m", f"faults: {name}")
    published_at = time.monotonic()
    found = re.search(r"published version (\d+)", done.stdout)
    assert done.returncode == 0 and found, done.stdout + done.stderr
    return int(found.group(1)), published_at


async def until_served(hotline: Hotline, version: int, timeout: float = 10.0) -> None:
    """Wait until the server says it serves `version` to new calls."""
    deadline = time.monotonic() + timeout
    while not hotline.log_has(f"event=menus_reloaded version={version} "):
        assert time.monotonic() < deadline, f"version {version} not reloaded:\n{hotline.log_path.read_text()[-2000:]}"
        await asyncio.sleep(0.1)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def case_lines(hotline: Hotline) -> int:
    """The cases' lines published and served; their version."""
    version, _ = await publish(hotline, "faults-callers.yaml")
    await until_served(hotline, version)
    return version


# ----------------------------------------------------------------------------- what a call left


async def journey_rows(hotline: Hotline, callers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each caller's newest journey as `hotline calls list --json` shows it (path, inputs, services)."""
    rows = {}
    async with connection(hotline.env["HOTLINE_DSN"]) as conn:
        for caller in callers:
            found = await list_calls(conn, caller=caller, limit=1)
            if found:
                rows[caller] = found[0]
    return rows


async def ari_get(hotline: Hotline, path: str) -> Any:
    auth = aiohttp.encode_basic_auth(hotline.env["HOTLINE_ARI_USER"], hotline.env["HOTLINE_ARI_PASSWORD"])
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        async with session.get(hotline.env["HOTLINE_ARI_URL"].rstrip("/") + "/ari/" + path) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def calls_in_progress(hotline: Hotline) -> float:
    """The server's own count of calls it holds (the `hotline_calls_in_progress` gauge)."""
    listen = hotline.env.get("HOTLINE_METRICS_LISTEN", Settings().metrics_listen)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{listen}/metrics") as resp:
            text = await resp.text()
    found = re.search(r"^hotline_calls_in_progress (\S+)$", text, re.MULTILINE)
    assert found, "no hotline_calls_in_progress in /metrics"
    return float(found.group(1))


async def left_behind(hotline: Hotline, callers: Sequence[str]) -> list[str]:
    """What these callers' calls still hold: their channels, bridges with their channels in them,
    playbacks started on them and never finished, and calls the server still counts."""
    mine = {c for caller in callers for c in hotline.observer.channel_by_caller.get(caller, [])}
    channels = [c["id"] for c in await ari_get(hotline, "channels") if c["id"] in mine]
    bridges = [b["id"] for b in await ari_get(hotline, "bridges") if mine & set(b["channels"])]
    started: set[str] = set()
    finished: set[str] = set()
    for event in hotline.observer.events:
        playback = event.get("playback", {})
        if playback.get("target_uri", "").removeprefix("channel:") in mine:
            if event["type"] == "PlaybackStarted":
                started.add(playback["id"])
            elif event["type"] == "PlaybackFinished":
                finished.add(playback["id"])
    held = await calls_in_progress(hotline)
    return ([f"channel {c}" for c in channels] + [f"bridge {b}" for b in bridges]
            + [f"playback {p} never finished" for p in started - finished]
            + ([f"the server holds {held:g} calls"] if held else []))


async def nothing_left_behind(hotline: Hotline, callers: Sequence[str]) -> list[str]:
    """Poll `left_behind` until it is empty or LEFTOVER_WAIT_S passed; what remains."""
    for _ in range(int(LEFTOVER_WAIT_S / 0.5)):
        if not await left_behind(hotline, callers):
            return []
        await asyncio.sleep(0.5)
    return await left_behind(hotline, callers)


def report(case: str, traces: list[CallerTrace], found: dict[str, Any], note: str = "") -> FaultReport:
    """The case's FAULT line, printed; every placed call reached the app and owes a journey."""
    result = FaultReport(case, placed=len(traces), completed=sum(t.result.ok for t in traces),
                         journeys=complete_journeys(found), silent=len(silent_callers(traces)), note=note)
    print(result.line())
    for trace in silent_callers(traces):
        print("  silent:", trace)
    return result


# ----------------------------------------------------------------------------- hang-up at every node type


@dataclass(frozen=True)
class HangupAt:
    """A caller who picks a node type in `pick` (key, after 1 s) and hangs up while there."""

    node_type: str
    node: str | None  # where the journey must end (None: before its first node, or at it)
    steps: tuple[tuple[float, str], ...]
    hangup_after: float  # seconds after the last key (or the answer) the caller hangs up
    outcome: str = "abandoned"


#: Timed against the sounds' lengths (sounds/zh): the caller is mid-prompt or mid-wait at the node.
HANGUPS = [
    HangupAt("call start", None, (), 0.0),  # at once: during the caller lookup, or as the first menu starts
    HangupAt("menu", "pick", (), 2.5),  # during menu_main (10.4 s), no key
    HangupAt("announcement", "announcement", ((1.0, "1"),), 2.0),  # announcement_hours, 10.7 s
    # through jump, sub and condition (they take no time), then during the refused service's prompt
    HangupAt("process", "balance", ((1.0, "2"),), 2.5),
    # the account number half typed after enter_account_number (4.2 s)
    HangupAt("collect", "account", ((1.0, "3"), (5.0, "1234")), 1.0),
    HangupAt("secure collect", "pin", ((1.0, "4"), (6.0, "135")), 1.0),  # half a PIN after enter_pin (5.4 s)
    HangupAt("transfer", "agent", ((1.0, "5"),), 2.0),  # during transfer_agent (4.3 s)
    HangupAt("survey", "survey", ((1.0, "6"),), 2.0),  # during survey_intro (8 s)
    # complaint_record (7 s) in full, the beep, then 2.5 s into the recording
    HangupAt("record", "message", ((1.0, "7"),), 10.0),
    HangupAt("hangup", "goodbye_long", ((1.0, "8"),), 2.0),  # during announcement_rates (9.6 s)
    # transfer_agent and recording_notice (9.4 s), then in the agents' context (queue, or its apology)
    HangupAt("queue", "queued", ((1.0, "9"),), 12.0, outcome="transferred"),
]


async def test_caller_hangs_up_at_every_node_type(hotline: Hotline, ears: CallerEars, case_lines: int) -> None:
    """Each journey is closed at the node the caller left from, and nothing is left behind."""
    callers = unique_callers(501, len(HANGUPS))
    calls = [SipCall(caller, NODE_TYPES_LINE, steps=case.steps, hangup_after=case.hangup_after, max_duration=40)
             for caller, case in zip(callers, HANGUPS, strict=True)]
    placing = asyncio.create_task(place_spread(ears, calls, per_second=2))
    await asyncio.sleep(4.0)
    during = await left_behind(hotline, callers)  # the probe sees calls in progress: it can fail
    traces = await placing
    found = await wait_for_journeys(hotline.env["HOTLINE_DSN"], callers, len(callers), JOURNEY_WAIT_S)
    rows = await journey_rows(hotline, callers)
    remains = await nothing_left_behind(hotline, callers)
    assert any(x.startswith("channel ") for x in during) and any(x.startswith("the server holds") for x in during)
    result = report("caller hangs up at every node type", traces, found,
                    note=f"{len(remains)} things left behind")
    wrong = []
    for caller, case, trace in zip(callers, HANGUPS, traces, strict=True):
        row = rows.get(caller, {})
        if trace.result.hangup_by != "local":
            wrong.append(f"{case.node_type}: the call ended before the caller hung up ({trace})")
        path = row.get("path") or [None]
        ended_at = None if case.node is None and path == ["pick"] else path[-1]
        if (ended_at, row.get("outcome")) != (case.node, case.outcome):
            wrong.append(f"{case.node_type}: journey ends {row.get('path')} {row.get('outcome')}, "
                         f"not at {case.node} {case.outcome}")
    by_type = {case.node_type: rows.get(caller, {}) for caller, case in zip(callers, HANGUPS, strict=True)}
    assert by_type["process"].get("path", [])[-4:] == ["via_jump", "via_sub", "check", "balance"], by_type["process"]
    assert by_type["process"].get("services") == [{"service": "balance", "result": "refused"}], by_type["process"]
    assert [(s["node"], s["no_answer"]) for s in by_type["survey"].get("surveys", [])] == [("survey", "hangup")]
    recording = f"call={by_type['record'].get('call_id')} recording="
    assert any("event=recording_abandoned" in line and recording in line
               for line in hotline.log_path.read_text(encoding="utf-8").splitlines()), "the record node's hang-up"
    assert not wrong, "\n".join(wrong) + "\n" + "\n".join(describe(traces))
    assert not remains, remains
    result.assert_nothing_lost()


# ----------------------------------------------------------------------------- DTMF floods

#: A flood: this many keys, one every FLOOD_PERIOD_S (each press its RTP event's first packet and
#: its three end packets), 0.5 s after the answer, while the first prompt plays.
FLOOD_KEYS = 200
FLOOD_PERIOD_S = 0.015
FLOOD_AT_S = 0.5
#: Quiet after the flood, then the caller's one deliberate key.
FLOOD_QUIET_S = 2.0


def _packets(pcap: bytes) -> list[tuple[int, bytes]]:
    """(µs from the first packet, record) of each packet of a pcap file as dtmf_pcap writes them."""
    packets, offset, first = [], 24, None
    while offset < len(pcap):
        sec, usec, length, _ = struct.unpack_from("<IIII", pcap, offset)
        at = sec * 1_000_000 + usec
        first = at if first is None else first
        packets.append((at - first, pcap[offset + 16: offset + 16 + length]))
        offset += 16 + length
    return packets


def keypad_pcap(path: Path, flood: str, key: str) -> Path:
    """One pcap of the caller's keypad: `flood`, FLOOD_PERIOD_S apart, then after FLOOD_QUIET_S
    `key` pressed as a person does. Each press is its own RTP event (dtmf_pcap: sequence numbers
    and timestamps after the previous press's), so Asterisk hears every one as a new key."""
    records: list[bytes] = []

    def add(at_us: int, frame: bytes) -> None:
        sec, usec = divmod(at_us, 1_000_000)
        records.append(struct.pack("<IIII", 1_700_000_000 + sec, usec, len(frame), len(frame)) + frame)

    period_us = round(FLOOD_PERIOD_S * 1_000_000)
    for index, digit in enumerate(flood):
        packets = _packets(dtmf_pcap_bytes(digit, index))
        first, ends = packets[0], packets[-3:]
        add(index * period_us, first[1])
        for j, (_, frame) in enumerate(ends):
            add(index * period_us + period_us // 2 + 50 * j, frame)
    last_at = len(flood) * period_us + round(FLOOD_QUIET_S * 1_000_000)
    for at, frame in _packets(dtmf_pcap_bytes(key, len(flood))):
        add(last_at + at, frame)
    path.write_bytes(dtmf_pcap_bytes("0")[:24] + b"".join(records))
    return path


def flood_digits(seed: int) -> str:
    """FLOOD_KEYS digits from 1 to 9 (never 0: the flood menu's goodbye), fixed per seed."""
    rng = random.Random(seed)
    return "".join(rng.choice("123456789") for _ in range(FLOOD_KEYS))


def call_log(hotline: Hotline, call_id: str) -> list[str]:
    """The server's log lines about one call."""
    return [line for line in hotline.log_path.read_text(encoding="utf-8").splitlines() if f"call={call_id} " in line
            or line.endswith(f"call={call_id}")]


async def test_dtmf_flood_at_a_menu_and_during_secure_input(hotline: Hotline, ears: CallerEars,
                                                            case_lines: int) -> None:
    """Hundreds of keys in a few seconds: the call goes on and ends with the key pressed after the
    flood; the per-call buffer stays bounded; nothing typed at the secure input reaches the log."""
    menu_caller, secure_caller = unique_callers(502, 2)
    menu_flood, secure_flood = flood_digits(1), flood_digits(2)
    length = FLOOD_AT_S + FLOOD_KEYS * FLOOD_PERIOD_S + FLOOD_QUIET_S
    calls = [SipCall(menu_caller, FLOOD_MENU_LINE, steps=[(FLOOD_AT_S, SPEAK)], max_duration=length + 20,
                     speech_pcap=keypad_pcap(hotline.tmp / "flood-menu.pcap", menu_flood, "0")),
             SipCall(secure_caller, FLOOD_SECURE_LINE, steps=[(FLOOD_AT_S, SPEAK)], max_duration=length + 20,
                     speech_pcap=keypad_pcap(hotline.tmp / "flood-secure.pcap", secure_flood, "1"))]
    traces = list(await asyncio.gather(*(place_traced(ears, call) for call in calls)))
    callers = [menu_caller, secure_caller]
    found = await wait_for_journeys(hotline.env["HOTLINE_DSN"], callers, len(callers), JOURNEY_WAIT_S)
    rows = await journey_rows(hotline, callers)
    menu, secure = rows[menu_caller], rows[secure_caller]
    menu_log, secure_log = call_log(hotline, menu["call_id"]), call_log(hotline, secure["call_id"])
    taken = len(menu["inputs"]) - 1  # the flood's keys the menu acted on (then the 0 after it)
    refused = [int(m.group(1)) for line in menu_log if (m := re.search(r"event=dtmf_dropped .*buffered=(\d+)", line))]
    delivered = sum(1 for e in hotline.observer.events if e["type"] == "ChannelDtmfReceived"
                    and e["channel"]["id"] == menu["call_id"])
    result = report("DTMF flood", traces, found,
                    note=f"{FLOOD_KEYS} keys sent each; at the menu Asterisk delivered {delivered}, the menu took "
                         f"{taken}, {len(refused)} refused with a full buffer")
    for trace in traces:
        assert trace.result.ok and trace.result.hangup_by == "remote", trace  # the goodbye after the last key

    # At the menu: every key taken came back to it; the key after the flood said goodbye.
    assert menu["path"][-2:] == ["menu", "goodbye"] and set(menu["path"][:-1]) == {"menu"}, menu["path"]
    assert menu["inputs"][-1] == {"node": "menu", "input": "0", "result": "option"}, menu["inputs"][-3:]
    assert all(i["result"] == "option" and i["input"] in menu_flood for i in menu["inputs"][:-1])
    assert taken + len(refused) + 1 == delivered, "every key Asterisk delivered was taken or refused, once"
    assert all(held == Settings().dtmf_capacity for held in refused), "refused only when the buffer is full"

    # During secure input: the PIN masked; the rest discarded while the caller keeps typing, but not
    # for ever (HOTLINE_DTMF_DISCARD_MAX_MS): the menu after it then hears the flood as wrong keys,
    # never recorded, and says goodbye.
    assert secure["path"] == ["pin", "after_pin", "goodbye"], secure["path"]
    assert secure["inputs"][0] == {"node": "pin", "input": "******", "result": "ok"}, secure["inputs"]
    assert {(i["node"], i["input"]) for i in secure["inputs"][1:]} <= {("after_pin", ""), ("after_pin", "1")}
    assert any("event=dtmf_discarded" in line for line in secure_log), secure_log
    shown = "\n".join(line.replace(secure["call_id"], "").replace(secure_caller, "") for line in secure_log)
    typed = {secure_flood[i:i + 6] for i in range(FLOOD_KEYS - 5)}
    assert not [run for run in typed if run in shown], "secure input reached the log"
    result.assert_nothing_lost()


# ----------------------------------------------------------------------------- one menu under load

#: "100 callers": this many calls at this rate into one menu, each choosing 1 (goodbye) after 1 s.
HAMMER_CALLS, HAMMER_PER_S = 100, 6.0


def hammer_call(caller: str) -> SipCall:
    return SipCall(caller, HAMMER_LINE, steps=[(1.0, "1")], max_duration=30)


async def test_a_hundred_callers_hammer_one_menu(hotline: Hotline, ears: CallerEars, case_lines: int) -> None:
    """100 calls over ~17 s, up to ~25 at once, all through the same menu: none fails, every
    journey is written, and each is the menu, the key, the goodbye."""
    callers = unique_callers(503, HAMMER_CALLS)
    traces = await place_spread(ears, [hammer_call(c) for c in callers], per_second=HAMMER_PER_S)
    found = await wait_for_journeys(hotline.env["HOTLINE_DSN"], callers, len(callers), JOURNEY_WAIT_S)
    rows = await journey_rows(hotline, callers)
    longest = max(t.longest_silence for t in traces)
    result = report("100 callers hammer one menu", traces, found,
                    note=f"{HAMMER_PER_S:g} calls/s; longest silence any caller heard {longest:.1f} s")
    assert all(t.result.hangup_by == "remote" for t in traces), "\n".join(describe(traces))
    wrong = {c: (r["path"], r["outcome"], r["inputs"]) for c, r in rows.items()
             if (r["path"], r["outcome"]) != (["menu", "goodbye"], "hangup")}
    assert not wrong, wrong
    result.assert_nothing_lost()


# ----------------------------------------------------------------------------- a menu published under load

PUBLISH_CALLS, PUBLISH_PER_S, PUBLISH_AFTER_S = 60, 4.0, 7.0
#: The longest a new call may still get the old version once `hotline menus publish` returned.
SWITCH_BUDGET_S = 2.0


async def test_a_menu_published_during_load(hotline: Hotline, ears: CallerEars, case_lines: int) -> None:
    """A new version (the hammered menu with another prompt) published while 60 calls come in:
    none fails, calls started before keep the old version and after it get the new one, each
    hearing its own version's prompt; how long after the publish new calls still got the old one
    is printed and bounded."""
    callers = unique_callers(504, PUBLISH_CALLS)

    async def publish_later() -> tuple[int, float]:
        await asyncio.sleep(PUBLISH_AFTER_S)
        version, _ = await publish(hotline, "faults-callers-v2.yaml", hammer_prompt="menu_accounts")
        return version, time.time()

    calls = asyncio.create_task(place_spread(ears, [hammer_call(c) for c in callers], per_second=PUBLISH_PER_S))
    new_version, published_at = await publish_later()
    traces = await calls
    found = await wait_for_journeys(hotline.env["HOTLINE_DSN"], callers, len(callers), JOURNEY_WAIT_S)
    rows = await journey_rows(hotline, callers)
    started = sorted((datetime.fromisoformat(r["started_at"]).timestamp() - published_at, r["menu_version"], c)
                     for c, r in rows.items())
    last_old = max(at for at, version, _ in started if version == case_lines)
    first_new = min(at for at, version, _ in started if version == new_version)
    switch_s = max(last_old, 0.0)  # how long after the publish returned new calls still got the old version
    result = report("menu published during load", traces, found,
                    note=f"v{case_lines} -> v{new_version} published {PUBLISH_AFTER_S:g} s in, a call every "
                         f"{1 / PUBLISH_PER_S:g} s; relative to the publish's return the last old-version call "
                         f"started at {last_old:+.2f} s, the first new-version one at {first_new:+.2f} s")
    versions = [version for _, version, _ in started]
    assert set(versions) == {case_lines, new_version}, versions
    assert versions == sorted(versions), "once a call got the new version, every later call did"
    for _, version, caller in started:
        heard = hotline.observer.heard(caller)
        prompt = "sound:hotline/zh/menu_main" if version == case_lines else "sound:hotline/zh/menu_accounts"
        assert heard and heard[0] == prompt, (caller, version, heard)
    assert switch_s <= SWITCH_BUDGET_S, result.line()
    result.assert_nothing_lost()
