"""A real SIP caller leaves a complaint on the real Asterisk: speaks after the beep, ends with `#`,
keeps the message, picks "cards"; `hotline complaints list --json` then lists the ticket with the
recording Asterisk wrote, a WAV file with the caller's audio in it."""

from __future__ import annotations

import asyncio
import json
import struct
import wave
from pathlib import Path

import pytest

from tests.e2e.conftest import Hotline
from tests.support.sipp import SPEAK, SipCall
from tests.support.speech_pcap import speech_pcap_path

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

CALLER = "13800138000"  # C001, a standard customer: key 4 of the main menu is "complaint"
SPEECH_S = 3.0


def recorded_audio(path: Path) -> tuple[float, int]:
    """A 16-bit mono WAV's length in seconds and its loudest sample."""
    with wave.open(str(path)) as recorded:
        assert recorded.getsampwidth() == 2, "16-bit samples"
        frames = recorded.readframes(recorded.getnframes())
        seconds = recorded.getnframes() / recorded.getframerate()
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    return seconds, max(map(abs, samples), default=0)


async def test_a_recorded_complaint_is_listed_with_its_recording(hotline: Hotline) -> None:
    call = SipCall(CALLER, "95000", speech_pcap=speech_pcap_path(SPEECH_S), max_duration=60, steps=[
        (3.0, "4"),  # type-ahead over the greeting: complaint
        (8.5, SPEAK),  # after complaint_record (7 s) and the beep
        (4.0, "#"),  # once the speech has been sent
        (3.0, "1"),  # while the message plays back: keep it
        (2.0, "3"),  # during the category menu: cards
    ])
    result = await hotline.call(call)
    assert result.ok, result.stderr
    row = hotline.last_call(CALLER)
    assert {"service": "complaint", "result": "ok"} in row["services"], row
    listed = hotline.cli("complaints", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    ticket = next(t for t in json.loads(listed.stdout) if t["call_id"] == row["call_id"])
    assert (ticket["customer_id"], ticket["callback_number"], ticket["category"], ticket["department"],
            ticket["status"]) == ("C001", CALLER, "card", "card_centre", "dispatched")
    path = Path(ticket["recording"])
    assert path.is_absolute() and path.suffix == ".wav", ticket["recording"]
    seconds, loudest = await asyncio.to_thread(recorded_audio, path)
    assert seconds >= SPEECH_S - 0.5, f"{path}: {seconds:.2f} s"
    assert loudest > 1000, f"{path}: silence (peak {loudest})"
    shown = hotline.cli("complaints", "show", ticket["ticket_id"])
    assert f"recording: {path}" in shown.stdout and "to card_centre  by hotline" in shown.stdout
