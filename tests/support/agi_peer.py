"""The dialplan's side of FastAGI, as the real Asterisk speaks it, for tests of our AGI server.

What it sends and answers is taken from a recording of Asterisk 22 (tests/fixtures/agi/
asterisk.json, made by tests/fake_agi/record.py with real calls to line 95002): the request block
is the recorded one with the call's values substituted (same variables, same order), and each reply
is the recorded reply to the same kind of command — `SET VARIABLE` → `200 result=1`, `GET
VARIABLE` → `200 result=1 (value)` or `200 result=0`, a malformed one → the `520-` usage block,
anything else → `510`. A caller hanging up is the recorded unsolicited `HANGUP` line.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

RECORDING = Path(__file__).resolve().parents[1] / "fixtures" / "agi" / "asterisk.json"


@cache
def recording() -> dict[str, Any]:
    return json.loads(RECORDING.read_text(encoding="utf-8"))


def recorded_requests(scenario: str = "call") -> list[dict[str, Any]]:
    return list(recording()["scenarios"][scenario])


def _recorded_reply(command: str) -> str:
    for request in recorded_requests():
        for exchange in request["exchanges"]:
            if exchange["command"] == command:
                return str(exchange["reply"])
    raise KeyError(command)


SET_OK = _recorded_reply('SET VARIABLE HOTLINE_STATUS "open"')  # 200 result=1
GET_UNSET = _recorded_reply("GET VARIABLE HOTLINE_NOT_SET")  # 200 result=0
UNKNOWN_COMMAND = _recorded_reply("NO SUCH COMMAND")  # 510 ...
SET_USAGE = _recorded_reply("SET VARIABLE")  # 520- ... 520 End of proper usage.
HANGUP = recorded_requests("caller_hangs_up_during_identify")[0]["unsolicited"]


def _get_reply(value: str) -> str:
    """`200 result=1 (<value>)`, in the recorded reply's shape."""
    recorded = _recorded_reply("GET VARIABLE HOTLINE_IDENTIFY")
    return recorded.replace("(unknown)", f"({value})")


def request_block(script: str, *, caller: str = "13800138000", extension: str = "95002",
                  uniqueid: str = "1795446064.0", args: Sequence[str] = (),
                  overrides: Mapping[str, str | None] | None = None) -> bytes:
    """The recorded identify request for `script`, with this call's values (None in `overrides`
    leaves a variable out); arguments follow as agi_arg_N, as Asterisk sends them."""
    template = recorded_requests()[0]["request"]
    env: dict[str, str] = dict(line.split(": ", 1) for line in template.rstrip("\n").split("\n"))
    env.update({"agi_network_script": script, "agi_request": f"agi://127.0.0.1:4573/{script}",
                "agi_callerid": caller, "agi_calleridname": caller, "agi_dnid": extension,
                "agi_extension": extension, "agi_uniqueid": uniqueid})
    env.update({f"agi_arg_{n}": value for n, value in enumerate(args, start=1)})
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return "".join(f"{name}: {value}\n" for name, value in env.items()).encode() + b"\n"


@dataclass
class Channel:
    """What the AGI server did to one channel."""

    variables: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    closed_by_server: bool = False

    def reply(self, command: str) -> str:
        """Asterisk's reply to `command`, applying it to the channel."""
        self.commands.append(command)
        words = shlex.split(command) if command.count('"') % 2 == 0 else command.split()
        verb = " ".join(words[:2]).upper()
        if verb == "SET VARIABLE":
            if len(words) < 4:
                return SET_USAGE
            self.variables[words[2]] = words[3]
            return SET_OK
        if verb == "GET VARIABLE" and len(words) == 3:
            value = self.variables.get(words[2])
            return GET_UNSET if value is None else _get_reply(value)
        return UNKNOWN_COMMAND


async def run_agi(port: int, block: bytes, *, host: str = "127.0.0.1", hangup: bool = False,
                  reply_delay: float = 0.0, timeout: float = 10.0, channel: Channel | None = None) -> Channel:
    """One AGI() from the dialplan: send `block`, answer commands until the server closes.
    `hangup` sends HANGUP right after the request (the caller hung up); `reply_delay` is a slow
    Asterisk answering each command."""
    channel = channel or Channel()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(timeout):
            writer.write(block)
            if hangup:
                writer.write(HANGUP.encode())
            await writer.drain()
            while line := await reader.readline():
                reply = channel.reply(line.decode().rstrip("\n"))
                if reply_delay:
                    await asyncio.sleep(reply_delay)
                writer.write(reply.encode())
                await writer.drain()
            channel.closed_by_server = True
    except ConnectionError:
        channel.closed_by_server = True
    finally:
        writer.close()
    return channel
