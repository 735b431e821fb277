"""Write pcap files of RFC 4733 DTMF events for SIPp's ``play_pcap_audio``.

SIPp ships ``dtmf_2833_<digit>.pcap`` files, but it replays a pcap byte for byte: the
RTP sequence numbers and timestamps are whatever the capture holds. Pressing the same
key twice (a PIN like ``1111``) would then send two identical events, which Asterisk
rightly treats as one retransmitted event. So we generate our own pcaps, one per key
*press*: the n-th press of a call gets sequence numbers and a timestamp after those of
press n-1. Everything else mirrors the shipped captures (checked with
``python -m tests.support.dtmf_pcap --compare``): Ethernet/IPv4/UDP framing,
payload type 101, SSRC, seven 20 ms update packets with the marker bit on the first
and durations 0..1920, then three identical end packets (E bit, duration 2240, the
next sequence number), volume 10.

The files are deterministic (same press, same bytes), so they are cached in a folder
(``.run/pcaps/`` by default) and written atomically so concurrent callers can share it.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
from pathlib import Path

#: RFC 4733 event codes for DTMF keys.
EVENT_CODES: dict[str, int] = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}

#: File-name-safe names for keys (``*`` and ``#`` make awkward file names).
KEY_NAMES: dict[str, str] = {
    **{str(d): str(d) for d in range(10)},
    "*": "star",
    "#": "pound",
    "A": "A",
    "B": "B",
    "C": "C",
    "D": "D",
}

PAYLOAD_TYPE = 101
SSRC = 0x0E05384E  # same as the shipped captures
VOLUME = 10
PACKET_INTERVAL_US = 20_000
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
UPDATE_PACKETS = 7
END_PACKETS = 3
DURATION_STEP = 2 * SAMPLES_PER_PACKET  # the shipped captures advance 320 per 20 ms packet
END_DURATION = DURATION_STEP * UPDATE_PACKETS  # 2240, as shipped

# Per-press spacing: sequence numbers and RTP time reserved for one key press.
SEQ_PER_PRESS = 16
TS_PER_PRESS = 16_000  # 2 s of 8 kHz samples; always ahead of the previous press

SRC_MAC = bytes.fromhex("000d8714ac24")
DST_MAC = bytes.fromhex("0050bf990336")
SRC_IP = bytes([192, 168, 0, 3])
DST_IP = bytes([192, 168, 0, 1])
SRC_PORT = 49176
DST_PORT = 10000
BASE_TIME = 1_134_424_480  # capture time of the shipped files; only differences matter

#: The checkout's ignored .run/ folder (this module is test support, never installed).
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / ".run" / "pcaps"


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) used by IPv4 and UDP headers."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(rtp: bytes, ip_id: int) -> bytes:
    """Wrap an RTP packet in UDP, IPv4 and Ethernet headers like the shipped captures."""
    udp_len = 8 + len(rtp)
    pseudo = SRC_IP + DST_IP + struct.pack("!BBH", 0, 17, udp_len)
    udp_nocsum = struct.pack("!HHHH", SRC_PORT, DST_PORT, udp_len, 0) + rtp
    udp_csum = _checksum(pseudo + udp_nocsum) or 0xFFFF
    udp = struct.pack("!HHHH", SRC_PORT, DST_PORT, udp_len, udp_csum) + rtp
    ip_nocsum = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ip_id & 0xFFFF, 0, 64, 17, 0, SRC_IP, DST_IP
    )
    ip = ip_nocsum[:10] + struct.pack("!H", _checksum(ip_nocsum)) + ip_nocsum[12:]
    return DST_MAC + SRC_MAC + b"\x08\x00" + ip + udp


def _rtp(seq: int, timestamp: int, marker: bool, event: int, end: bool, duration: int) -> bytes:
    byte1 = (0x80 if marker else 0) | PAYLOAD_TYPE
    header = struct.pack("!BBHII", 0x80, byte1, seq & 0xFFFF, timestamp & 0xFFFFFFFF, SSRC)
    flags = (0x80 if end else 0) | (VOLUME & 0x3F)
    return header + struct.pack("!BBH", event, flags, duration)


def dtmf_pcap_bytes(key: str, press_index: int = 0) -> bytes:
    """The pcap file content for the ``press_index``-th key press (0-based) of a call."""
    if key not in EVENT_CODES:
        raise ValueError(f"not a DTMF key: {key!r}")
    if press_index < 0:
        raise ValueError("press_index must be >= 0")
    event = EVENT_CODES[key]
    seq0 = 1000 + press_index * SEQ_PER_PRESS
    ts = 8000 + press_index * TS_PER_PRESS
    ip_id = 0xF000 + press_index * SEQ_PER_PRESS
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    t_us = press_index * 2_000_000

    def record(frame: bytes, at_us: int) -> None:
        sec, usec = divmod(at_us, 1_000_000)
        out.append(struct.pack("<IIII", BASE_TIME + sec, usec, len(frame), len(frame)) + frame)

    for i in range(UPDATE_PACKETS):
        rtp = _rtp(seq0 + i, ts, i == 0, event, False, i * DURATION_STEP)
        record(_frame(rtp, ip_id + i), t_us + i * PACKET_INTERVAL_US)
    end_seq = seq0 + UPDATE_PACKETS
    for j in range(END_PACKETS):
        rtp = _rtp(end_seq, ts, False, event, True, END_DURATION)
        record(_frame(rtp, ip_id + UPDATE_PACKETS + j), t_us + UPDATE_PACKETS * PACKET_INTERVAL_US + 50 * j)
    return b"".join(out)


def dtmf_pcap_path(key: str, press_index: int = 0, cache_dir: Path | None = None) -> Path:
    """Return the cached pcap for this press, writing it first if needed (atomically)."""
    folder = cache_dir or Path(os.environ.get("HOTLINE_PCAP_DIR", DEFAULT_CACHE_DIR))
    path = folder / f"dtmf-{KEY_NAMES[key]}-{press_index:03d}.pcap"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    data = dtmf_pcap_bytes(key, press_index)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pcap")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def describe(data: bytes) -> list[tuple[int, bool, int, int, int, bool, int, int]]:
    """Decode a DTMF pcap into (relative µs, marker, seq, ts, event, end, volume, duration) rows."""
    rows = []
    off = 24
    first: int | None = None
    while off < len(data):
        sec, usec, incl, _orig = struct.unpack("<IIII", data[off : off + 16])
        pkt = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        at = sec * 1_000_000 + usec
        first = at if first is None else first
        rtp = pkt[14 + 20 + 8 :]
        _b0, b1, seq, ts, _ssrc = struct.unpack("!BBHII", rtp[:12])
        event, flags, duration = struct.unpack("!BBH", rtp[12:16])
        rows.append((at - first, bool(b1 & 0x80), seq, ts, event, bool(flags & 0x80), flags & 0x3F, duration))
    return rows


def _compare_with_shipped(shipped_dir: Path) -> int:
    """Check our structure against SIPp's own captures (relative seq/ts, flags, timing)."""
    status = 0
    for key, name in (("1", "1"), ("*", "star"), ("#", "pound")):
        shipped = shipped_dir / f"dtmf_2833_{name}.pcap"
        if not shipped.is_file():
            print(f"skip {shipped}: missing")
            continue
        theirs, ours = describe(shipped.read_bytes()), describe(dtmf_pcap_bytes(key, 3))

        def norm(rows: list[tuple[int, bool, int, int, int, bool, int, int]]) -> list[tuple[object, ...]]:
            s0, t0 = rows[0][2], rows[0][3]
            return [(round(r[0] / 1000), r[1], r[2] - s0, r[3] - t0, r[4], r[5], r[6], r[7]) for r in rows]

        same = norm(theirs) == norm(ours)
        print(f"{key}: {'same structure' if same else 'DIFFERENT'} as {shipped.name}")
        if not same:
            status = 1
            for a, b in zip(norm(theirs), norm(ours), strict=False):
                print("  shipped", a, "ours", b)
    return status


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.dtmf_pcap KEYS [--out DIR]`` or ``--compare``."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.dtmf_pcap", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "keys", nargs="?", default="", help="keys to write pcaps for, one press each, e.g. 1*#"
    )
    parser.add_argument("--out", type=Path, default=None, help="cache folder (default .run/pcaps)")
    parser.add_argument("--compare", action="store_true", help="compare with /usr/share/sip-tester captures")
    args = parser.parse_args(argv)
    if args.compare:
        return _compare_with_shipped(Path("/usr/share/sip-tester"))
    for index, key in enumerate(args.keys):
        print(dtmf_pcap_path(key, index, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
