"""Place real SIP calls into the sandbox Asterisk with SIPp.

The end-to-end tests and ``scripts/call`` describe a caller declaratively — who calls,
which line, which keys after which pauses, who hangs up — and this module turns that
into a one-call SIPp UAC scenario, runs ``sipp`` as an asyncio subprocess and reports
what happened. Several calls may run at once: every call gets its own SIP and media
ports and its own Call-ID.

Scenario design (the reasons are in /work/shared/ASTERISK-NOTES.md and SIPp's docs):

* INVITE with SDP offering PCMU and ``telephone-event/8000`` as payload 101, ACK the 200.
* DTMF is RFC 4733 RTP played from pcaps generated per key press
  (:mod:`tests.support.dtmf_pcap`), so repeated keys are distinct events.
* Every wait is a ``<recv request="BYE" timeout=... ontimeout=...>`` rather than a
  ``<pause>``: if Asterisk hangs up while the caller is still waiting, SIPp answers the
  BYE with 200 and the call ends cleanly instead of "Aborting call on an unexpected BYE".
* Without ``hangup_after`` the caller waits (up to the remaining ``max_duration``) for
  Asterisk to hang up; with it, the caller sends BYE that many seconds after the last
  key. Which side hung up is reported in :attr:`SipResult.hangup_by`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

from tests.support.dtmf_pcap import EVENT_CODES, dtmf_pcap_path

#: Seconds between two keys of the same step. A DTMF pcap lasts 140 ms; SIPp cancels a
#: pcap still playing when the next one starts, so keys must not overlap.
INTER_DIGIT_GAP = 0.3

#: Minimum seconds between the last key and a BYE from the caller (the key's RTP must land first).
KEY_SETTLE = 0.3

#: Seconds SIPp gets, beyond ``max_duration``, before we kill it.
KILL_GRACE = 15.0

#: Port ranges for SIPp's own sockets, clear of Asterisk's RTP range (config/sandbox.yaml).
SIP_PORT_RANGE = (31000, 39999)
MEDIA_PORT_RANGE = (40000, 59990)

_HANGUP_MARK = "HOTLINE_HANGUP_BY="

#: A step's "digits" that mean "the caller speaks": SipCall.speech_pcap is played instead of a key.
SPEAK = "~"


@dataclass(frozen=True)
class SipCall:
    """One scripted caller."""

    caller: str  # user part of From (the ANI)
    line: str  # dialled number (request URI user part), e.g. "95000"
    steps: Sequence[tuple[float, str]] = ()  # (pause seconds before, digits to send) in order
    # The caller sends BYE this long after the last step; None = wait for Asterisk to hang up.
    hangup_after: float | None = None
    max_duration: float = 90.0  # hard limit for the whole call
    speech_pcap: Path | None = None  # what a SPEAK step plays (tests/support/speech_pcap.py)

    def validate(self) -> None:
        """Reject calls SIPp could not place or that would produce invalid SIP."""
        for name, value in (("caller", self.caller), ("line", self.line)):
            if not value or not all(c.isalnum() or c in "+-_.*#" for c in value):
                raise ValueError(f"{name} must be a non-empty SIP user part, got {value!r}")
        for pause, digits in self.steps:
            if pause < 0:
                raise ValueError(f"negative pause {pause}")
            if digits == SPEAK:
                if self.speech_pcap is None:
                    raise ValueError("a SPEAK step needs speech_pcap")
                continue
            bad = [d for d in digits if d not in EVENT_CODES]
            if bad:
                raise ValueError(f"not DTMF keys: {''.join(bad)!r} (allowed: 0-9 * # A-D)")
        if self.hangup_after is not None and self.hangup_after < 0:
            raise ValueError("hangup_after must be >= 0")
        if self.max_duration <= 0:
            raise ValueError("max_duration must be > 0")

    @property
    def scripted_seconds(self) -> float:
        """Time the scenario spends on its own pauses and key presses after the answer."""
        total = 0.0
        for pause, digits in self.steps:
            total += pause + INTER_DIGIT_GAP * max(len(digits) - 1, 0)
        return total


@dataclass(frozen=True)
class SipResult:
    """What SIPp reported for one call."""

    returncode: int  # SIPp's exit code: 0 = the call succeeded, 1 = it failed, <0 = killed
    call_id: str  # the SIP Call-ID, unique per call (matches ARI's channel var SIPCALLID)
    stdout: str
    stderr: str  # SIPp's stderr plus its log of unexpected messages, if any
    scenario: str  # the generated scenario XML
    hangup_by: str | None = None  # "remote" (Asterisk sent BYE), "local" (caller sent BYE), None = neither
    duration: float = 0.0  # wall-clock seconds the SIPp process ran
    local_port: int = 0
    media_port: int = 0
    digits_sent: str = field(default="")

    @property
    def ok(self) -> bool:
        """The call was set up and ended by a BYE from either side."""
        return self.returncode == 0 and self.hangup_by is not None


# ----------------------------------------------------------------------------- ports

_reserved: set[int] = set()
_reserved_lock = threading.Lock()


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick(span: int, low: int, high: int, step: int = 1) -> int:
    """A port such that port..port+span-1 are free now and not reserved by another call here."""
    for _ in range(500):
        port = random.randrange(low, high, step)
        block = range(port, port + span)
        with _reserved_lock:
            if any(p in _reserved for p in block):
                continue
            if all(_udp_free(p) for p in block):
                _reserved.update(block)
                return port
    raise RuntimeError(f"no free UDP ports in {low}-{high}")


@contextmanager
def _ports() -> Iterator[tuple[int, int]]:
    """Reserve a SIP port and an even media port (SIPp also uses media+1..+3) for one call."""
    sip_port = _pick(1, *SIP_PORT_RANGE)
    try:
        media_port = _pick(4, MEDIA_PORT_RANGE[0], MEDIA_PORT_RANGE[1], 2)
    except BaseException:
        with _reserved_lock:
            _reserved.discard(sip_port)
        raise
    try:
        yield sip_port, media_port
    finally:
        with _reserved_lock:
            _reserved.difference_update({sip_port, *range(media_port, media_port + 4)})


# ----------------------------------------------------------------------------- scenario

_INVITE = """\
    INVITE sip:{line}@[remote_ip]:[remote_port] SIP/2.0
    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
    From: "{caller}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]hotline[call_number]
    To: <sip:{line}@[remote_ip]:[remote_port]>
    Call-ID: [call_id]
    CSeq: 1 INVITE
    Contact: <sip:{caller}@[local_ip]:[local_port]>
    Max-Forwards: 70
    User-Agent: hotline-sipp
    Content-Type: application/sdp
    Content-Length: [len]

    v=0
    o=- 53655765 2353687637 IN IP[local_ip_type] [local_ip]
    s=-
    c=IN IP[media_ip_type] [media_ip]
    t=0 0
    m=audio [media_port] RTP/AVP 0 101
    a=rtpmap:0 PCMU/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-15
    a=ptime:20
    a=sendrecv
"""

# In-dialog requests go to the answering side's Contact through the Route set its 200 recorded, as
# RFC 3261 (12.2.1.1) has it: a proxy in front (Kamailio, `make cluster`) stays on the path; straight
# to Asterisk the Route set is empty and SIPp drops the empty [routes] line.
_ACK = """\
    ACK [next_url] SIP/2.0
    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
    [routes]
    From: "{caller}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]hotline[call_number]
    [last_To:]
    Call-ID: [call_id]
    CSeq: 1 ACK
    Contact: <sip:{caller}@[local_ip]:[local_port]>
    Max-Forwards: 70
    Content-Length: 0
"""

_BYE = """\
    BYE [next_url] SIP/2.0
    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
    [routes]
    From: "{caller}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]hotline[call_number]
    [last_To:]
    Call-ID: [call_id]
    CSeq: 2 BYE
    Contact: <sip:{caller}@[local_ip]:[local_port]>
    Max-Forwards: 70
    Content-Length: 0
"""

_BYE_OK = """\
    SIP/2.0 200 OK
    [last_Via:]
    [last_From:]
    [last_To:]
    [last_Call-ID:]
    [last_CSeq:]
    Contact: <sip:{caller}@[local_ip]:[local_port]>
    Content-Length: 0
"""


def _cdata(text: str) -> str:
    return "<![CDATA[\n" + text + "\n  ]]>"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def build_scenario(call: SipCall, pcap_dir: Path | None = None) -> tuple[str, str]:
    """Return (scenario XML, keys sent) for ``call``; writes any missing DTMF pcaps."""
    call.validate()
    fmt = {"caller": call.caller, "line": call.line}
    budget_ms = _ms(call.max_duration)
    parts: list[str] = [
        '<?xml version="1.0" encoding="ISO-8859-1" ?>',
        '<scenario name="hotline caller">',
        f'  <send retrans="500">{_cdata(_INVITE.format(**fmt))}</send>',
        '  <recv response="100" optional="true"/>',
        '  <recv response="180" optional="true"/>',
        '  <recv response="183" optional="true"/>',
        # No ontimeout: an unanswered call fails (SIPp then CANCELs it by default).
        f'  <recv response="200" rtd="true" rrs="true" timeout="{budget_ms}"/>',
        f"  <send>{_cdata(_ACK.format(**fmt))}</send>",
    ]
    label = 0

    def wait(seconds: float) -> None:
        """A pause that ends early, cleanly, if Asterisk hangs up meanwhile."""
        nonlocal label
        if seconds <= 0:
            return
        label += 1
        parts.append(f'  <recv request="BYE" timeout="{_ms(seconds)}" ontimeout="w{label}" next="peer_bye"/>')
        parts.append(f'  <label id="w{label}"/>')

    sent = ""
    for pause, digits in call.steps:
        wait(pause)
        if digits == SPEAK:
            parts.append(f"  <nop><action><exec play_pcap_audio={quoteattr(str(call.speech_pcap))}/></action></nop>")
            continue
        for i, key in enumerate(digits):
            if i:
                wait(INTER_DIGIT_GAP)
            pcap = dtmf_pcap_path(key, len(sent), pcap_dir)
            parts.append(f"  <nop><action><exec play_pcap_audio={quoteattr(str(pcap))}/></action></nop>")
            sent += key

    remaining_ms = max(1000, budget_ms - _ms(call.scripted_seconds))
    if call.hangup_after is None:
        # No ontimeout: if Asterisk never hangs up, the call fails (and SIPp sends BYE).
        parts.append(f'  <recv request="BYE" timeout="{remaining_ms}" next="peer_bye"/>')
    else:
        # A key press takes 140 ms of RTP; a BYE sent sooner would overtake the last key.
        after = max(call.hangup_after, KEY_SETTLE) if sent else call.hangup_after
        wait_ms = min(_ms(after), remaining_ms) if after > 0 else 0
        if wait_ms:
            parts.append(f'  <recv request="BYE" timeout="{wait_ms}" ontimeout="local_bye" next="peer_bye"/>')
        parts += [
            '  <label id="local_bye"/>',
            f'  <nop><action><log message="{_HANGUP_MARK}local"/></action></nop>',
            f"  <send>{_cdata(_BYE.format(**fmt))}</send>",
            '  <recv response="200" timeout="10000" next="end"/>',
        ]
    parts += [
        '  <label id="peer_bye"/>',
        f'  <nop><action><log message="{_HANGUP_MARK}remote"/></action></nop>',
        f"  <send>{_cdata(_BYE_OK.format(**fmt))}</send>",
        '  <label id="end"/>',
        "</scenario>",
        "",
    ]
    return "\n".join(parts), sent


# ----------------------------------------------------------------------------- running


def _collect_logs(work: Path, log_path: Path, err_path: Path, keep_dir: Path | None) -> tuple[str, str]:
    """Read SIPp's action log and unexpected-message log; optionally keep all files."""
    actions = log_path.read_text(errors="replace") if log_path.exists() else ""
    errors = err_path.read_text(errors="replace") if err_path.exists() else ""
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        for path in work.iterdir():
            shutil.copy2(path, keep_dir / path.name)
    return actions, errors


def _sipp_binary() -> str:
    path = shutil.which("sipp")
    if not path:
        raise FileNotFoundError("sipp not found (install sip-tester: scripts/sandbox deps)")
    return path


async def place_call(
    call: SipCall,
    *,
    target: str = "127.0.0.1:5060",
    pcap_dir: Path | None = None,
    keep_dir: Path | None = None,
) -> SipResult:
    """Place ``call`` to ``target`` and wait for it to end; never raises for call failures.

    ``keep_dir``: copy the scenario and SIPp's logs there (for debugging a failing test).
    """
    scenario, sent = build_scenario(call, pcap_dir)
    call_id = f"hotline-{uuid.uuid4().hex}@127.0.0.1"
    sipp = _sipp_binary()
    with tempfile.TemporaryDirectory(prefix="hotline-sipp-") as tmp, _ports() as (sip_port, media_port):
        work = Path(tmp)
        scen_path = work / "call.xml"
        scen_path.write_text(scenario, encoding="ISO-8859-1")
        log_path, err_path = work / "actions.log", work / "errors.log"
        argv = [
            sipp, target,
            "-sf", str(scen_path),
            "-m", "1", "-l", "1",
            "-i", "127.0.0.1", "-p", str(sip_port), "-mp", str(media_port),
            "-cid_str", call_id,
            "-aa", "-nostdin",
            "-trace_logs", "-log_file", str(log_path),
            "-trace_err", "-error_file", str(err_path),
        ]  # fmt: skip
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=work,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), call.max_duration + KILL_GRACE)
        except TimeoutError:
            # SIPp's own timeouts should have ended the call; this is the last resort.
            if proc.returncode is None:
                proc.kill()
            out, err = await proc.communicate()
        except asyncio.CancelledError:
            # Never leave a SIPp process behind a cancelled test.
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        duration = time.monotonic() - started
        actions, errors = await asyncio.to_thread(_collect_logs, work, log_path, err_path, keep_dir)
        hangup_by = None
        for line in actions.splitlines():
            if _HANGUP_MARK in line:
                hangup_by = line.split(_HANGUP_MARK, 1)[1].strip()
        stderr = err.decode(errors="replace")
        if errors.strip():
            stderr += ("\n" if stderr else "") + "--- SIPp unexpected-message log ---\n" + errors
        return SipResult(
            returncode=proc.returncode if proc.returncode is not None else -1,
            call_id=call_id,
            stdout=out.decode(errors="replace"),
            stderr=stderr,
            scenario=scenario,
            hangup_by=hangup_by,
            duration=round(duration, 3),
            local_port=sip_port,
            media_port=media_port,
            digits_sent=sent,
        )


def place_call_sync(call: SipCall, **kw: object) -> SipResult:
    """Blocking wrapper of :func:`place_call` for scripts and synchronous tests."""
    return asyncio.run(place_call(call, **kw))  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.support.sipp --caller N --line L [--digits D] [--pause S] [--hangup-after S]``."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.sipp", description="Place one SIP call with SIPp."
    )
    parser.add_argument("--caller", required=True, help="calling number (From user part)")
    parser.add_argument("--line", required=True, help="dialled number, e.g. 95000")
    parser.add_argument("--digits", default="", help="keys to press after --pause, e.g. '1*#'")
    parser.add_argument(
        "--pause", type=float, default=3.0, help="seconds after answer before the keys (default 3)"
    )
    parser.add_argument("--hangup-after", type=float, default=None, help="caller hangs up N s after the keys")
    parser.add_argument(
        "--max-duration", type=float, default=90.0, help="hard limit for the call (default 90 s)"
    )
    parser.add_argument("--target", default="127.0.0.1:5060", help="SIP server host:port")
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON (without stdout/scenario)"
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="copy scenario and SIPp logs into this folder"
    )
    args = parser.parse_args(argv)
    steps = [(args.pause, args.digits)] if args.digits else []
    if not args.digits and args.hangup_after is not None:
        steps = [(args.pause, "")]
    call = SipCall(args.caller, args.line, steps, args.hangup_after, args.max_duration)
    try:
        result = place_call_sync(call, target=args.target, keep_dir=args.keep)
    except (ValueError, FileNotFoundError) as exc:
        print(f"sipp: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        data = asdict(result)
        for key in ("stdout", "scenario"):
            data.pop(key)
        data["ok"] = result.ok
        print(json.dumps(data, indent=2))
    else:
        print(
            f"call_id={result.call_id} returncode={result.returncode} ok={result.ok} "
            f"hangup_by={result.hangup_by} duration={result.duration}s digits={result.digits_sent!r}"
        )
        if not result.ok and result.stderr.strip():
            print(result.stderr.strip()[-2000:], file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
