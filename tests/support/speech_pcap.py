"""A pcap of a caller speaking, for SIPp's ``play_pcap_audio``: G.711 μ-law RTP (payload type 0,
what our SIPp caller offers) of a rising and falling tone, 20 ms per packet, framed as
``dtmf_pcap`` frames its events. Its own SSRC and numbering, so it never looks like a repeat of
a key press. Deterministic, cached beside the DTMF pcaps."""

from __future__ import annotations

import math
import os
import struct
import tempfile
from pathlib import Path

from tests.support.dtmf_pcap import (
    BASE_TIME,
    DEFAULT_CACHE_DIR,
    PACKET_INTERVAL_US,
    SAMPLES_PER_PACKET,
    _frame,
)

SSRC = 0x5EEC4000
PAYLOAD_TYPE = 0  # PCMU


def _ulaw(sample: int) -> int:
    """One 16-bit linear sample as G.711 μ-law."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), clip) + bias
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def speech_pcap_bytes(seconds: float) -> bytes:
    """`seconds` of a voice-like tone (loud enough that Asterisk's silence detector hears talking)."""
    packets = int(seconds * 1000 / 20)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for index in range(packets):
        payload = bytes(_ulaw(int(9000 * math.sin(2 * math.pi * (300 + 200 * math.sin(n / 4000)) * n / 8000)))
                        for n in range(index * SAMPLES_PER_PACKET, (index + 1) * SAMPLES_PER_PACKET))
        rtp = struct.pack("!BBHII", 0x80, (0x80 if index == 0 else 0) | PAYLOAD_TYPE, (30_000 + index) & 0xFFFF,
                          (8_000_000 + index * SAMPLES_PER_PACKET) & 0xFFFFFFFF, SSRC) + payload
        sec, usec = divmod(index * PACKET_INTERVAL_US, 1_000_000)
        frame = _frame(rtp, 0x3000 + index)
        out.append(struct.pack("<IIII", BASE_TIME + sec, usec, len(frame), len(frame)) + frame)
    return b"".join(out)


def speech_pcap_path(seconds: float, cache_dir: Path | None = None) -> Path:
    """The cached pcap of `seconds` of speech, written first if needed (atomically)."""
    folder = cache_dir or Path(os.environ.get("HOTLINE_PCAP_DIR", DEFAULT_CACHE_DIR))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"speech_{int(seconds * 1000)}ms.pcap"
    if not path.exists():
        with tempfile.NamedTemporaryFile(dir=folder, delete=False) as tmp:
            tmp.write(speech_pcap_bytes(seconds))
        os.replace(tmp.name, path)
    return path
