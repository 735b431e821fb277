"""Record what the real Asterisk sends a FastAGI server, for the fake peer to be checked against.

Run once against the sandbox (it owns Asterisk's ports while it runs)::

    flock /tmp/hotline-asterisk.lock scripts/sandbox asterisk-start
    flock /tmp/hotline-asterisk.lock .venv/bin/python -m tests.fake_agi.record
    flock /tmp/hotline-asterisk.lock scripts/sandbox asterisk-stop

It listens on HOTLINE_AGI_LISTEN in place of `hotline serve`, places real SIPp calls to line
95002 (plain dialplan calling identify, status and route) and writes every request block, every
command it sent with Asterisk's exact reply bytes, and what Asterisk sent on its own (`HANGUP`
when the caller hangs up during a request) to tests/fixtures/agi/asterisk.json.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from agi_app.config import host_port, read_env_file
from tests.support.sipp import SipCall, place_call

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "agi" / "asterisk.json"

#: Commands sent per hook: the replies to a set, a get (set and unset), an unknown command and a
#: malformed one are what the fake peer must reproduce.
PROBES: dict[str, list[str]] = {
    "identify": ['SET VARIABLE HOTLINE_IDENTIFY "unknown"', "GET VARIABLE HOTLINE_IDENTIFY",
                 "GET VARIABLE HOTLINE_NOT_SET", "NO SUCH COMMAND", "SET VARIABLE"],
    "status": ['SET VARIABLE HOTLINE_STATUS "open"'],
    "route": ['SET VARIABLE HOTLINE_ROUTE "general"'],
}


async def read_reply(reader: asyncio.StreamReader) -> str:
    """One reply: a line, or a `520-` usage block up to its `520 ` end line."""
    reply = await asyncio.wait_for(reader.readline(), 5)
    while reply.startswith(b"520-") and not reply.splitlines()[-1].startswith(b"520 "):
        line = await asyncio.wait_for(reader.readline(), 5)
        if not line:
            break
        reply += line
    return reply.decode()


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.hold_identify = False  # the hang-up scenario: keep identify open until Asterisk speaks

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        block = await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
        script = next(line.split(": ", 1)[1] for line in block.decode().splitlines()
                      if line.startswith("agi_network_script: "))
        entry: dict[str, Any] = {"script": script, "request": block.decode(), "exchanges": []}
        self.requests.append(entry)
        if self.hold_identify and script == "identify":
            unsolicited = await asyncio.wait_for(reader.readline(), 10)
            entry["unsolicited"] = unsolicited.decode()
            commands = ['SET VARIABLE HOTLINE_IDENTIFY "unknown"']
        else:
            commands = PROBES.get(script, [])
        for command in commands:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            entry["exchanges"].append({"command": command, "reply": await read_reply(reader)})
        writer.close()


def asterisk_version() -> str:
    done = subprocess.run([str(REPO / "scripts" / "sandbox"), "asterisk-status"], capture_output=True, text=True)
    return done.stdout.strip()


async def main() -> None:
    env = read_env_file(REPO / ".run" / "hotline.env")
    host, port = host_port("agi_listen", env.get("HOTLINE_AGI_LISTEN", "127.0.0.1:4573"))
    recorder = Recorder()
    server = await asyncio.start_server(recorder.handle, host, port)
    scenarios: dict[str, list[dict[str, Any]]] = {}
    async with server:
        answered = await place_call(SipCall(caller="13912345678", line="95002", hangup_after=6.0, max_duration=20))
        assert answered.returncode == 0, answered.stderr
        scenarios["call"], recorder.requests = recorder.requests, []
        recorder.hold_identify = True
        await place_call(SipCall(caller="13912345678", line="95002", hangup_after=1.0, max_duration=20))
        await asyncio.sleep(1)
        scenarios["caller_hangs_up_during_identify"] = recorder.requests
    doc = {"description": "What Asterisk sent a FastAGI server for real calls to line 95002"
                          " (tests/fake_agi/record.py)", "recorded_with": asterisk_version(), "scenarios": scenarios}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(OUT)


if __name__ == "__main__":
    asyncio.run(main())
