"""One load step of `make bench`: a single SIPp process placing `rate` calls per second for
`seconds`, every call the scenario in bench/uac.xml (answer, a key one second into the menu prompt,
goodbye, Asterisk hangs up), callers taken in turn from an injection file.

SIPp's own statistics file (`-trace_stat`) says how many calls it placed, and how many succeeded
and failed; its exit code alone would not say how many.
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SCENARIO = Path(__file__).resolve().parent / "uac.xml"

#: Seconds a bench call may last at most: answer, the key at 1 s, the 15 s wait for the goodbye's BYE.
CALL_MAX_S = 20.0

#: Seconds SIPp gets past the step and its last calls before it is killed (its calls then count as failed).
KILL_GRACE_S = 30.0


@dataclass(frozen=True)
class SippCounts:
    """SIPp's cumulative counters at the end of a step."""

    placed: int
    succeeded: int
    failed: int


def parse_stats(text: str) -> SippCounts:
    """The last row of a SIPp `-trace_stat` file (`;`-separated, cumulative `(C)` columns)."""
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=";") if row]
    if len(rows) < 2:
        raise ValueError("SIPp statistics file has no data row")
    header, last = rows[0], rows[-1]
    values = dict(zip(header, last, strict=False))
    try:
        return SippCounts(placed=int(values["OutgoingCall(C)"]), succeeded=int(values["SuccessfulCall(C)"]),
                          failed=int(values["FailedCall(C)"]))
    except KeyError as exc:
        raise ValueError(f"SIPp statistics file lacks column {exc}") from None


def callers_file(path: Path, callers: Sequence[str]) -> Path:
    """SIPp's injection file: one caller number per call, taken in order and reused in turn."""
    path.write_text("SEQUENTIAL\n" + "".join(f"{caller};\n" for caller in callers), encoding="ascii")
    return path


def sipp_command(*, target: str, line: str, rate: int, calls: int, callers: Path, stats: Path,
                 sip_port: int, media_port: int, errors: Path) -> list[str]:
    """The SIPp command line of one step. `-l` caps the calls up at once (a stalled server must not make
    SIPp open thousands); statistics are dumped every second so a killed SIPp still left its counts."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise FileNotFoundError("sipp not found (install sip-tester: scripts/sandbox deps)")
    concurrent = max(50, int(rate * CALL_MAX_S))
    return [sipp, target, "-sf", str(SCENARIO), "-s", line, "-inf", str(callers),
            "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(concurrent),
            "-i", "127.0.0.1", "-p", str(sip_port), "-mp", str(media_port),
            "-trace_stat", "-stf", str(stats), "-fd", "1",
            "-trace_err", "-error_file", str(errors), "-nostdin", "-aa"]


async def run_step(command: list[str], stats: Path, *, seconds: float) -> tuple[SippCounts, int]:
    """Run SIPp until its calls are done (or killed past the step, its last calls and a grace);
    (counts, exit code). Calls SIPp never got to place are counted as failed by the caller."""
    proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(seconds + CALL_MAX_S + KILL_GRACE_S):
            _, stderr = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        stderr = b""
    finally:
        if proc.returncode is None:  # cancelled: never leave SIPp calling
            proc.kill()
            await proc.wait()
    try:
        text = await asyncio.to_thread(stats.read_text, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise RuntimeError(f"SIPp left no statistics (exit {proc.returncode}): "
                           f"{stderr.decode(errors='replace')[-500:]}") from None
    return parse_stats(text), proc.returncode or 0
