"""The yardstick measured against known traffic: real packets over loopback, shaped like Asterisk's
answer, prompt audio, quiet audio and BYE, must read back as the answer, the sounds and the silence
they are; and the report must fail on each kind of loss."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from tests.e2e.faults.matrix import CallerEars, FaultReport, audible
from tests.support.sipp import SipResult

SIP_PORT, MEDIA_PORT = 38997, 59970  # inside SIPp's ranges, outside what its calls draw in this test


def rtp(seq: int, sample: int) -> bytes:
    """One 20 ms PCMU packet, every sample the mu-law byte `sample`."""
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234) + bytes([sample]) * 160


def test_loud_and_quiet_mu_law() -> None:
    assert audible(rtp(1, 0x20))  # a loud sample
    assert not audible(rtp(1, 0xFF)) and not audible(rtp(1, 0x7F))  # +0 and -0
    assert not audible(rtp(1, 0xEE))  # second-smallest segment: hiss
    assert not audible(b"\x80\x65" + rtp(1, 0x20)[2:])  # telephone-event, not audio


@pytest.mark.asyncio
async def test_ears_hear_answer_sound_quiet_keys_and_bye_over_loopback() -> None:
    with CallerEars() as ears, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as send, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
        caller.bind(("127.0.0.1", MEDIA_PORT))  # the caller's keys leave from its media port
        started = time.monotonic()

        def to(port: int, data: bytes) -> None:
            send.sendto(data, ("127.0.0.1", port))

        to(SIP_PORT, b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
        for seq in range(15):  # 0.3 s of prompt
            to(MEDIA_PORT, rtp(seq, 0x20))
            await asyncio.sleep(0.02)
        for seq in range(15, 75):  # 1.2 s of quiet: packets, but nothing to hear
            to(MEDIA_PORT, rtp(seq, 0xFF))
            await asyncio.sleep(0.02)
        for seq in range(75, 90):  # the caller keys a digit: busy, not waiting
            caller.sendto(b"\x80\x65" + rtp(seq, 0)[2:12] + b"\x01\x0a\x00\xa0", ("127.0.0.1", 9))
            to(MEDIA_PORT, rtp(seq, 0xFF))
            await asyncio.sleep(0.02)
        for seq in range(90, 130):  # 0.8 s of quiet again
            to(MEDIA_PORT, rtp(seq, 0xFF))
            await asyncio.sleep(0.02)
        to(SIP_PORT, b"BYE sip:caller@127.0.0.1 SIP/2.0\r\nCSeq: 2 BYE\r\n\r\n")
        await asyncio.sleep(0.3)
        await ears.caught_up()
        result = SipResult(0, "x", "", "", "", hangup_by="remote", duration=time.monotonic() - started,
                           local_port=SIP_PORT, media_port=MEDIA_PORT)
        trace = ears.trace("1990", result, started)
        unanswered = ears.trace("1991", SipResult(1, "y", "", "", "", duration=1.0, local_port=SIP_PORT - 1,
                                                  media_port=MEDIA_PORT - 2), started)
    assert trace.answered_at is not None and trace.ended_at is not None
    assert 1.0 < trace.longest_silence < 1.8, trace
    assert trace.first_sound is not None and trace.first_sound < 0.1, trace
    assert not trace.silent
    assert unanswered.never_answered and unanswered.silent


def test_the_report_fails_on_each_kind_of_loss() -> None:
    FaultReport("fine", placed=5, completed=4, journeys=3, silent=0, cut=1, reached=3).assert_nothing_lost(
        allowed_cut=1)
    losses = {
        "journeys missing": FaultReport("j", placed=5, completed=5, journeys=4, silent=0),
        "in silence": FaultReport("s", placed=5, completed=5, journeys=5, silent=1),
        "calls cut": FaultReport("c", placed=5, completed=4, journeys=5, silent=0, cut=1),
        "calls failed": FaultReport("f", placed=5, completed=4, journeys=5, silent=0),
    }
    for words, report in losses.items():
        with pytest.raises(AssertionError, match=words):
            report.assert_nothing_lost()
    assert FaultReport("x", 3, 3, 3, 0, note="n").line() == "FAULT x: placed=3 completed=3 journeys=3/3 silent=0 cut=0 (n)"
