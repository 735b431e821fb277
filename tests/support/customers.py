"""The customers a callback rings: one SIPp UAS on the `customers` endpoint's address
(config/sandbox.yaml ``customers:``) answering every INVITE, staying on the line until Asterisk
hangs up (or ``talk_s`` runs out, then it hangs up itself) — except numbers starting with
``BUSY_PREFIX``, which are busy (486).

Its log says which number each call was for and who ended it, for end-to-end tests to read. The
SIP message shapes are the demo agents' (tests/support/agents.py), reused, not copied.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import yaml

from tests.support.agents import (
    _RESPONSE_HEADERS,
    _SDP,
    SANDBOX_VALUES,
    _cdata,
    _stop_process,
    marked_lines,
    start_uas,
)

_ANSWERED = "HOTLINE_CUSTOMER_ANSWERED"
_HUNG_UP_ON = "HOTLINE_CUSTOMER_HUNG_UP_ON"
_BUSY = "HOTLINE_CUSTOMER_BUSY"
#: Customers whose number starts so are on another call.
BUSY_PREFIX = "139"


def customers_address(values_path: Path = SANDBOX_VALUES) -> tuple[str, int]:
    data = yaml.safe_load(values_path.read_text(encoding="utf-8")) or {}
    return str(data["customers"]["host"]), int(data["customers"]["port"])


def answer_scenario(talk_s: float) -> str:
    """Answer an INVITE (ringing first; busy for BUSY_PREFIX numbers), log the number dialled,
    wait for Asterisk's BYE."""
    tag = ";tag=[pid]customer[call_number]"
    headers = _RESPONSE_HEADERS.format(user="customer", tag=tag)
    ringing = f"    SIP/2.0 180 Ringing\n{headers}\n    Content-Length: 0"
    busy = f"    SIP/2.0 486 Busy Here\n{headers}\n    Content-Length: 0"
    ok = (f"    SIP/2.0 200 OK\n{headers}\n    Content-Type: application/sdp\n"
          f"    Content-Length: [len]\n\n{_SDP}")
    bye_ok = "\n".join(["    SIP/2.0 200 OK", "    [last_Via:]", "    [last_From:]", "    [last_To:]",
                        "    [last_Call-ID:]", "    [last_CSeq:]", "    Content-Length: 0"])
    bye = "\n".join([
        "    BYE [$asterisk_contact] SIP/2.0",
        "    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        f"    From: <sip:customer@[local_ip]:[local_port]>{tag}",
        "    To: [$caller_from]",
        "    Call-ID: [call_id]",
        "    CSeq: 2 BYE",
        "    Max-Forwards: 70",
        "    Content-Length: 0",
    ])
    return "\n".join([
        '<?xml version="1.0" encoding="ISO-8859-1" ?>',
        '<scenario name="customer called back">',
        '  <recv request="INVITE" crlf="true">',
        "    <action>",
        '      <ereg regexp="^INVITE sip:([0-9]+)@" search_in="msg" assign_to="uri,number"/>',
        f'      <ereg regexp="^INVITE sip:{BUSY_PREFIX}" search_in="msg" check_it="false" assign_to="busy"/>',
        '      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="caller_from"/>',
        '      <ereg regexp="&lt;([^&gt;]*)&gt;" search_in="hdr" header="Contact:" '
        'assign_to="contact_all,asterisk_contact"/>',
        "    </action>",
        "  </recv>",
        '  <nop test="busy" next="busy"/>',
        f"  <send>{_cdata(ringing)}</send>",
        f'  <send retrans="500">{_cdata(ok)}</send>',
        '  <recv request="ACK" crlf="true"/>',
        f'  <nop><action><log message="{_ANSWERED} [$number] [call_id]"/></action></nop>',
        f'  <recv request="BYE" timeout="{round(talk_s * 1000)}" ontimeout="customer_bye" next="hung_up_on"/>',
        '  <label id="customer_bye"/>',
        f'  <send retrans="500">{_cdata(bye)}</send>',
        '  <recv response="200" timeout="5000" next="done"/>',
        '  <label id="hung_up_on"/>',
        f'  <nop><action><log message="{_HUNG_UP_ON} [call_id]"/></action></nop>',
        f'  <send next="done">{_cdata(bye_ok)}</send>',
        '  <label id="busy"/>',
        f'  <nop><action><log message="{_BUSY} [$number] [call_id]"/></action></nop>',
        f"  <send>{_cdata(busy)}</send>",
        '  <recv request="ACK"/>',
        '  <label id="done"/>',
        '  <Reference variables="uri,contact_all"/>',
        "</scenario>",
        "",
    ])


class CustomerPhones:
    """The running UAS; `answered` lists the numbers called, `hung_up_on` the calls Asterisk ended."""

    def __init__(self, workdir: Path, *, talk_s: float = 60.0, media_port: int = 30200) -> None:
        self._dir = workdir
        self.talk_s, self.media_port = talk_s, media_port
        self.host, self.port = customers_address()
        self._uas: asyncio.subprocess.Process | None = None

    @property
    def log_path(self) -> Path:
        return self._dir / "customers.log"

    @property
    def answered(self) -> list[str]:
        """`<number> <Call-ID>` of each call answered, in order."""
        return marked_lines(self.log_path, _ANSWERED)

    @property
    def hung_up_on(self) -> list[str]:
        return marked_lines(self.log_path, _HUNG_UP_ON)

    @property
    def busy(self) -> list[str]:
        """`<number> <Call-ID>` of each call refused as busy."""
        return marked_lines(self.log_path, _BUSY)

    async def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        scenario = self._dir / "customers.xml"
        scenario.write_text(answer_scenario(self.talk_s), encoding="ISO-8859-1")
        self._uas = await start_uas(scenario, self.host, self.port, self.media_port, self.log_path, "customers")

    async def stop(self) -> None:
        if self._uas is not None:
            await _stop_process(self._uas)


@contextlib.asynccontextmanager
async def customer_phones(workdir: Path, *, talk_s: float = 60.0) -> AsyncIterator[CustomerPhones]:
    phones = CustomerPhones(workdir, talk_s=talk_s)
    await phones.start()
    try:
        yield phones
    finally:
        await phones.stop()
