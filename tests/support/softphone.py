"""A real softphone for end-to-end calls whose digits are only known mid-call (a one-time code read
from the outbox): Debian's baresip, driven through its standard input, which sends each typed digit
as an RFC 4733 event. SIPp cannot do this: its digits are scheduled before the call starts.

Each call gets a throwaway config folder (no registration, PCMU, a silent audio source), a budget
for every wait, and the process is always ended when the call's block exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import wave
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

MODULES = Path("/usr/lib/baresip/modules")
# baresip's own lines that mark the call's life (stdio user interface, 1.0.0).
ESTABLISHED = "Call established"
CLOSED = ("terminated (duration", "session closed")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _silence(path: Path, seconds: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 8000 * seconds)


def _config(folder: Path, caller: str, budget_s: float) -> None:
    _silence(folder / "silence.wav", int(budget_s) + 5)
    (folder / "config").write_text("\n".join([
        f"module_path {MODULES}",
        f"sip_listen 127.0.0.1:{_free_udp_port()}",
        "audio_source aufile," + str(folder / "silence.wav"),
        "audio_player aubridge,x",
        "audio_alert aubridge,x",
        "module g711.so", "module aufile.so", "module aubridge.so", "module stdio.so",
        "module_app account.so", "module_app menu.so",
        "",
    ]), encoding="utf-8")
    (folder / "accounts").write_text(f"<sip:{caller}@127.0.0.1>;regint=0;audio_codecs=PCMU\n", encoding="utf-8")
    (folder / "contacts").write_text("", encoding="utf-8")


@dataclass
class Softphone:
    """One call in progress: wait for its answer, type digits, hang up or await the far end's hangup."""

    process: asyncio.subprocess.Process
    output: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read_output(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.output.append(line)
            if ESTABLISHED in line:
                self.answered.set()
            if any(mark in line for mark in CLOSED):
                self.closed.set()
        self.closed.set()  # the process ended: so did its call

    def transcript(self) -> str:
        return "\n".join(self.output)

    async def established(self, timeout: float = 15.0) -> None:
        try:
            await asyncio.wait_for(self.answered.wait(), timeout)
        except TimeoutError:
            raise AssertionError("the call was not answered:\n" + self.transcript()) from None

    async def press(self, digits: str, *, gap: float = 0.25) -> None:
        """Type `digits`, one RFC 4733 event each, `gap` seconds apart (a finger's pace)."""
        assert self.process.stdin is not None
        for digit in digits:
            self.process.stdin.write(digit.encode())
            await asyncio.wait_for(self.process.stdin.drain(), 5)
            await asyncio.sleep(gap)

    async def hang_up(self) -> None:
        if self.closed.is_set() or self.process.stdin is None:
            return
        self.process.stdin.write(b"/hangup\n")
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(self.process.stdin.drain(), 5)
        await self.ended(10)

    async def ended(self, timeout: float) -> None:
        """The call is over (either end hung up)."""
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"the call was still on after {timeout} s:\n" + self.transcript()) from None


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.write(b"/quit\n")
        try:
            await asyncio.wait_for(process.wait(), 3)
        except TimeoutError:
            process.kill()
            await asyncio.wait_for(process.wait(), 5)


@contextlib.asynccontextmanager
async def dial(caller: str, extension: str, *, host: str = "127.0.0.1", port: int = 5060,
               budget_s: float = 90.0) -> AsyncIterator[Softphone]:
    """Call `extension` as `caller` and yield the call; baresip quits by itself after `budget_s`
    and is killed, if need be, when the block exits."""
    binary = shutil.which("baresip")
    assert binary, "baresip is not installed (scripts/sandbox deps installs it)"
    folder = Path(tempfile.mkdtemp(prefix="baresip-"))
    try:
        _config(folder, caller, budget_s)
        process = await asyncio.create_subprocess_exec(
            # Line-buffered: to a pipe, baresip's output would arrive in 4 KiB blocks, long after the call.
            "stdbuf", "-oL", binary, "-f", str(folder), "-t", str(int(budget_s)), "-e", f"/dial sip:{extension}@{host}:{port}",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        phone = Softphone(process)
        reader = asyncio.create_task(phone.read_output())
        try:
            yield phone
        finally:
            await _stop(process)
            await asyncio.wait_for(reader, 5)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
