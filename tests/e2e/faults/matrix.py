"""The fault matrix's yardstick: what each case counts and how (issue 13).

Every case places real SIPp calls and reports one `FaultReport`: calls placed, calls completed,
journeys written, callers left in silence, calls cut. Silence is measured at the caller, not
from our own logs: `CallerEars` captures the loopback traffic of SIPp's ports (an AF_PACKET
socket, root only, the way tcpdump would) and records, per call, when Asterisk answered, when
the BYE went either way and when audible audio reached the caller's media port. A caller is
"left in silence" when the call was never answered, or when, answered and still up, they heard
nothing — no prompt, no hold music, no agent — for longer than `SILENCE_S`, while not typing keys
themselves (a caller keying a long account number is busy, not waiting).

Calls are told apart by their caller number (one unique number per call, `unique_callers`):
the journey rows (table `calls`) and the observer's ARI events carry it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agi_app.db.pool import connection
from tests.support.sipp import MEDIA_PORT_RANGE, SIP_PORT_RANGE, SipCall, SipResult, place_call

#: A caller hearing nothing for longer than this, while the call is up, was left in silence.
SILENCE_S = 5.0

#: Caller numbers the matrix hands out: unknown to the demo bank (they get the general menu).
CALLER_BASE = 19900000000


@dataclass
class FaultReport:
    """One case's outcome, printed as one line and asserted."""

    case: str
    placed: int
    completed: int
    journeys: int
    silent: int
    cut: int = 0
    note: str = ""
    #: Calls that reached the app (each owes a journey); None: every placed call did.
    reached: int | None = None

    def line(self) -> str:
        reached = self.placed if self.reached is None else self.reached
        text = (f"FAULT {self.case}: placed={self.placed} completed={self.completed} "
                f"journeys={self.journeys}/{reached} silent={self.silent} cut={self.cut}")
        return f"{text} ({self.note})" if self.note else text

    def assert_nothing_lost(self, *, allowed_cut: int = 0) -> None:
        """No journey missing for a call that reached the app, nobody in silence, no more cut
        calls than the fault makes unavoidable, and every other call completed."""
        reached = self.placed if self.reached is None else self.reached
        problems = []
        if self.journeys < reached:
            problems.append(f"{reached - self.journeys} journeys missing")
        if self.silent:
            problems.append(f"{self.silent} callers left in silence")
        if self.cut > allowed_cut:
            problems.append(f"{self.cut} calls cut (allowed {allowed_cut})")
        if self.completed + self.cut < self.placed:
            problems.append(f"{self.placed - self.completed - self.cut} calls failed")
        assert not problems, f"{self.line()}: " + ", ".join(problems)


def unique_callers(case_number: int, count: int) -> list[str]:
    """`count` caller numbers no other case uses (case_number < 1000, count < 10000)."""
    assert 0 <= case_number < 1000 and 0 < count < 10_000
    return [str(CALLER_BASE + case_number * 10_000 + i) for i in range(count)]


# ----------------------------------------------------------------------------- what the caller heard

_ETH_IPV4 = 0x0800
_UDP = 17
_PACKET_OUTGOING = 4  # loopback shows each packet twice: once going out, once coming in
_SIP_PORTS = range(*SIP_PORT_RANGE)
_MEDIA_PORTS = range(MEDIA_PORT_RANGE[0], MEDIA_PORT_RANGE[1] + 4)
_SO_TIMESTAMP = 29  # Linux: each packet's capture time (struct timeval) as ancillary data
_PROBE_PORT, _PROBE = 9, b"hotline-ears-probe "  # the discard port: nobody answers, the capture sees it
DTMF_PAYLOAD_TYPE = 101  # tests/support/sipp.py offers telephone-event/8000 as 101
#: mu-law bytes of the two smallest segments (|sample| < ~95 of 8159): silence or hiss, not a prompt.
_QUIET_ULAW = bytes(b for b in range(256) if b & 0x70 in (0x70, 0x60))


def audible(rtp: bytes) -> bool:
    """An RTP packet of PCMU audio with at least one sample above the quiet segments."""
    if len(rtp) < 12 or rtp[0] >> 6 != 2 or rtp[1] & 0x7F != 0:
        return False
    start = 12 + 4 * (rtp[0] & 0x0F)
    return bool(rtp[start:].translate(None, _QUIET_ULAW))


def key_press(rtp: bytes) -> bool:
    """An RFC 4733 telephone-event packet (payload type 101, as SIPp's callers send keys)."""
    return len(rtp) >= 16 and rtp[0] >> 6 == 2 and rtp[1] & 0x7F == DTMF_PAYLOAD_TYPE


@dataclass(frozen=True)
class CallerTrace:
    """One SIPp call as its caller lived it."""

    caller: str
    result: SipResult
    started: float  # time.monotonic() when SIPp was started
    answered_at: float | None  # the 200 OK to the INVITE reached the caller
    ended_at: float | None  # the first BYE, either way
    longest_silence: float  # seconds without audible audio or a key while the call was up
    first_sound: float | None = None  # seconds from the answer to the first audible packet

    @property
    def never_answered(self) -> bool:
        return self.answered_at is None

    @property
    def silent(self) -> bool:
        """Left in silence: never answered, or nothing heard for longer than SILENCE_S."""
        return self.never_answered or self.longest_silence > SILENCE_S

    def __str__(self) -> str:
        answered = "never answered" if self.answered_at is None else f"answered +{self.answered_at - self.started:.1f}s"
        return (f"{self.caller}: {answered}, hangup_by={self.result.hangup_by}, rc={self.result.returncode}, "
                f"first sound {self.first_sound}s, longest silence {self.longest_silence:.1f}s, "
                f"{self.result.duration:.1f}s")


class CallerEars:
    """Listens on the loopback interface to what Asterisk sends SIPp's callers (root only).

    A thread reads the raw socket (never the event loop: a stalled loop would drop packets and
    invent silences) and keeps, per SIPp port, the times of answers, BYEs and audible RTP: the
    kernel's capture times, so a thread running late does not stretch or squeeze the gaps.
    """

    def __init__(self) -> None:
        self._marks: dict[int, list[tuple[float, str]]] = defaultdict(list)
        self._stop = threading.Event()
        self._probes_sent = 0
        self._probes_heard = 0
        self._probe_heard = threading.Condition()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._wall_ahead = time.time() - time.monotonic()  # capture times are wall clock

    def __enter__(self) -> CallerEars:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(_ETH_IPV4))
        except PermissionError as exc:
            raise PermissionError("the fault matrix hears callers through a raw socket: run it as root") from exc
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
        sock.bind(("lo", 0))
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._listen, name="caller-ears", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._sock is not None:
            self._sock.close()

    def _listen(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                frame, ancillary, _, address = self._sock.recvmsg(65536, 64)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] == _PACKET_OUTGOING:
                continue
            captured = time.monotonic()
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMP:
                    seconds, micros = struct.unpack("qq", data[:16])
                    captured = seconds + micros / 1e6 - self._wall_ahead
            self._note(frame, captured)

    async def caught_up(self, budget_s: float = 5.0) -> None:
        """Wait until the thread has noted every packet captured before now (a busy machine can
        leave it behind: a BYE not yet noted would read as a call never ended). Packets are read
        in capture order, so a probe sent now and heard means all before it were noted too."""
        self._probes_sent += 1
        probe = self._probes_sent
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as send:
            send.sendto(_PROBE + str(probe).encode(), ("127.0.0.1", _PROBE_PORT))
        if not await asyncio.to_thread(self._heard_probe, probe, budget_s):
            raise AssertionError(f"the capture thread is over {budget_s} s behind: no reliable trace")

    def _heard_probe(self, probe: int, budget_s: float) -> bool:
        with self._probe_heard:
            return self._probe_heard.wait_for(lambda: self._probes_heard >= probe, budget_s)

    def _note(self, frame: bytes, now: float) -> None:
        if len(frame) < 42 or frame[23] != _UDP:
            return
        header = 14 + (frame[14] & 0x0F) * 4
        src, dst = struct.unpack_from("!HH", frame, header)
        payload = frame[header + 8:]
        if dst == _PROBE_PORT and payload.startswith(_PROBE):
            with self._probe_heard:
                self._probes_heard = max(self._probes_heard, int(payload[len(_PROBE):]))
                self._probe_heard.notify_all()
        elif dst in _MEDIA_PORTS and audible(payload):
            self._marks[dst].append((now, "sound"))
        elif src in _MEDIA_PORTS and key_press(payload):  # the caller typing is not a caller waiting in silence
            self._marks[src].append((now, "key"))
        elif payload.startswith(b"BYE "):  # either way: the SIPp port is the one in its range
            port = dst if dst in _SIP_PORTS else src
            if port in _SIP_PORTS:
                self._marks[port].append((now, "bye"))
        elif dst in _SIP_PORTS and payload.startswith(b"SIP/2.0 200") and b" INVITE\r\n" in payload:
            self._marks[dst].append((now, "answer"))

    def trace(self, caller: str, result: SipResult, started: float) -> CallerTrace:
        """What `caller` heard on the call SIPp reported as `result`, started at `started`."""
        until = started + result.duration + 0.5

        def within(port: int, kind: str) -> list[float]:
            return [t for t, k in list(self._marks.get(port, ())) if k == kind and started <= t <= until]

        answers, byes = within(result.local_port, "answer"), within(result.local_port, "bye")
        answered = answers[0] if answers else None
        ended = byes[0] if byes else None
        longest, first = 0.0, None
        if answered is not None:
            end = ended if ended is not None else started + result.duration
            sounds = [t for t in within(result.media_port, "sound") if answered <= t <= end]
            keys = [t for t in within(result.media_port, "key") if answered <= t <= end]
            points = [answered, *sorted(sounds + keys), end]
            longest = max(b - a for a, b in zip(points, points[1:], strict=False))
            first = round(sounds[0] - answered, 3) if sounds else None
        return CallerTrace(caller, result, started, answered, ended, round(longest, 2), first)


async def place_traced(ears: CallerEars, call: SipCall) -> CallerTrace:
    """Place one call and tell what its caller heard."""
    started = time.monotonic()
    result = await place_call(call)
    await ears.caught_up()
    return ears.trace(call.caller, result, started)


async def place_spread(ears: CallerEars, calls: Sequence[SipCall], per_second: float) -> list[CallerTrace]:
    """Start `calls` at `per_second` (evenly spaced), all running together; their traces in order."""
    async def later(i: int, call: SipCall) -> CallerTrace:
        await asyncio.sleep(i / per_second)
        return await place_traced(ears, call)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(later(i, call)) for i, call in enumerate(calls)]
    return [task.result() for task in tasks]


# ----------------------------------------------------------------------------- journeys and the app


@dataclass(frozen=True)
class Journey:
    call_id: str
    caller: str
    outcome: str | None
    ended: bool  # the journey was closed (ended_at written)
    menu_version: int | None


async def journeys(dsn: str, callers: Iterable[str]) -> dict[str, list[Journey]]:
    """The journeys written for these caller numbers, oldest first, by caller."""
    async with connection(dsn) as conn:
        rows = await conn.fetch(
            "SELECT call_id, caller, outcome, ended_at IS NOT NULL AS ended, menu_version FROM calls "
            "WHERE caller = ANY($1::text[]) ORDER BY started_at", list(callers))
    found: dict[str, list[Journey]] = defaultdict(list)
    for row in rows:
        found[row["caller"]].append(Journey(**dict(row)))
    return found


def complete_journeys(found: dict[str, list[Journey]]) -> int:
    """Callers with at least one closed journey."""
    return sum(1 for rows in found.values() if any(j.ended for j in rows))


async def wait_for_journeys(dsn: str, callers: Sequence[str], expected: int, timeout: float) -> dict[str, list[Journey]]:
    """Poll until `expected` callers have a closed journey, or `timeout` (then what there is)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await journeys(dsn, callers)
        if complete_journeys(found) >= expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


@dataclass
class AppContact:
    """Which callers' channels our app served, from the observer's ARI events: each owes a journey.
    Served: it ran Stasis and the app played to it. A channel that ran Stasis while the app was away
    (HOTLINE_FALLBACK_REASON=app-down) owes one too, written by the dialplan and imported by the
    next server (`owes_journey`). One the app sent straight to the dialplan fallback (draining, at
    capacity) has a journey but is not served: its apology is dialplan, not ARI, playback."""

    channels: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    stasis: set[str] = field(default_factory=set)
    app_down: set[str] = field(default_factory=set)
    fallback: set[str] = field(default_factory=set)
    played_to: set[str] = field(default_factory=set)

    @classmethod
    def from_events(cls, events: Iterable[dict[str, Any]]) -> AppContact:
        seen = cls()
        for event in list(events):
            kind, channel = event.get("type"), event.get("channel") or {}
            if kind == "ChannelCreated":
                seen.channels[channel["caller"]["number"]].append(channel["id"])
            elif kind == "PlaybackStarted" and event["playback"]["target_uri"].startswith("channel:"):
                seen.played_to.add(event["playback"]["target_uri"].removeprefix("channel:"))
            elif kind == "ChannelDialplan" and event.get("dialplan_app") == "Stasis":
                seen.stasis.add(channel["id"])
            elif kind == "ChannelDialplan" and channel.get("dialplan", {}).get("context") == "hotline-fallback":
                seen.fallback.add(channel["id"])
            elif kind == "ChannelVarset" and event.get("variable") == "HOTLINE_FALLBACK_REASON" \
                    and event.get("value") == "app-down":
                seen.app_down.add(channel["id"])
        return seen

    def reached_app(self, caller: str) -> bool:
        return any(c in self.stasis and c not in self.app_down and c in self.played_to
                   for c in self.channels.get(caller, ()))

    def found_no_app(self, caller: str) -> bool:
        return any(c in self.app_down for c in self.channels.get(caller, ()))

    def owes_journey(self, caller: str) -> bool:
        return self.reached_app(caller) or self.found_no_app(caller)

    def went_to_fallback(self, caller: str) -> bool:
        return any(c in self.fallback for c in self.channels.get(caller, ()))


def silent_callers(traces: Iterable[CallerTrace]) -> list[CallerTrace]:
    return [t for t in traces if t.silent]


def describe(traces: Iterable[CallerTrace]) -> Iterator[str]:
    """One line per call, for an assertion message."""
    return (str(t) for t in traces)
