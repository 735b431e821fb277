"""A FastAGI request as Asterisk sends it, read under a budget and validated before any hook runs.

Asterisk opens a TCP connection and sends one `agi_<name>: <value>` line per variable, then a
blank line (tests/fixtures/agi/asterisk.json is a recording). A peer that is not Asterisk, or one
that stalls, must cost us a bounded read and a clear refusal, never a hung task: the block is
limited in size and time, every line must have that shape, values are short text, and the few
variables the hooks read must be there.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

#: The whole request block; Asterisk's is ~600 bytes, with arguments well under 2 KiB.
MAX_REQUEST_BYTES = 8192
#: One value (a caller name, an argument); longer is refused, not cut.
MAX_VALUE_CHARS = 256
#: What every hook needs: which hook, the call, who calls, which line.
REQUIRED = ("agi_network_script", "agi_uniqueid", "agi_channel", "agi_callerid", "agi_extension")

_NAME = re.compile(r"agi_[a-z0-9_]{1,40}")
_SCRIPT = re.compile(r"[a-z][a-z0-9_]{0,31}")
_LINE = re.compile(r"[0-9]{1,20}")


class AgiRequestError(Exception):
    """The request cannot be served; `reason` is a fixed token the dialplan may read (it never
    echoes what the peer sent)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class AgiRequest:
    """One validated request: the hook's name (`agi://host:port/<script>`) and Asterisk's variables."""

    script: str
    env: Mapping[str, str]

    @property
    def call_id(self) -> str:
        """Asterisk's unique id of the channel, the call id the ARI path logs too."""
        return self.env["agi_uniqueid"]

    @property
    def caller(self) -> str:
        return self.env["agi_callerid"]

    @property
    def args(self) -> tuple[str, ...]:
        """AGI(agi://…/script,arg1,arg2): agi_arg_1, agi_arg_2, ... in order."""
        found: list[str] = []
        while (value := self.env.get(f"agi_arg_{len(found) + 1}")) is not None:
            found.append(value)
        return tuple(found)

    @property
    def line(self) -> str:
        """The hotline number: the first argument if the dialplan gives one, else the extension."""
        line = self.args[0] if self.args and self.args[0] else self.env["agi_extension"]
        if not _LINE.fullmatch(line):
            raise AgiRequestError("no_line", "the extension or first argument is not a line number")
        return line


def parse_request(block: bytes) -> AgiRequest:
    """The request from its raw block (the terminating blank line included or not)."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AgiRequestError("malformed_request", "not UTF-8") from exc
    env: dict[str, str] = {}
    for number, line in enumerate(text.rstrip("\n").split("\n"), start=1):
        name, sep, value = line.partition(": ")
        if not sep and line.endswith(":"):  # `agi_accountcode:` with its space trimmed by a proxy
            name, sep, value = line[:-1], ":", ""
        if not sep or not _NAME.fullmatch(name):
            raise AgiRequestError("malformed_request", f"line {number} is not `agi_<name>: <value>`")
        if name in env:
            raise AgiRequestError("malformed_request", f"{name} given twice")
        if len(value) > MAX_VALUE_CHARS:
            raise AgiRequestError("value_too_long", f"{name} is over {MAX_VALUE_CHARS} characters")
        if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
            raise AgiRequestError("malformed_request", f"{name} holds a control character")
        env[name] = value
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise AgiRequestError("missing_variables", ", ".join(missing))
    script = env["agi_network_script"]
    if not _SCRIPT.fullmatch(script):
        raise AgiRequestError("unknown_script", "not a hook name")
    return AgiRequest(script, env)


async def read_block(reader: asyncio.StreamReader, *, budget_s: float) -> bytes:
    """The raw request block, within `budget_s`. The reader's limit must be MAX_REQUEST_BYTES
    (`asyncio.start_server(limit=...)`): a longer block is refused unread."""
    try:
        async with asyncio.timeout(budget_s):
            return await reader.readuntil(b"\n\n")
    except TimeoutError as exc:
        raise AgiRequestError("request_timeout", f"no complete request within {budget_s:g} s") from exc
    except asyncio.LimitOverrunError as exc:
        raise AgiRequestError("request_too_large", f"over {MAX_REQUEST_BYTES} bytes") from exc
    except asyncio.IncompleteReadError as exc:
        raise AgiRequestError("request_incomplete", "the connection closed before the blank line") from exc
