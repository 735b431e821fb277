"""The fake AMI server checked against reality: each recorded session of the real sandbox is replayed on
the fake over raw TCP (no client of ours in between), and the fake must send the same messages, with the
same headers in the same order and the same values (but ids and clocks)."""

from __future__ import annotations

import asyncio

import pytest

from tests.fake_ami.pytest_plugin import fake_ami  # noqa: F401  (the fixture)
from tests.fake_ami.recordings import FIXTURES, Recordings
from tests.fake_ami.server import SECRET, FakeAmi

#: Values that differ from one run to the next: ids, clocks, uptimes.
VOLATILE = frozenset({"ActionID", "LoginTime", "LastPause", "LastCall", "Uptime", "LastReload", "Timestamp"})


async def read_message(reader: asyncio.StreamReader) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    while True:
        line = (await reader.readline()).decode().rstrip("\r\n")
        if not line and lines:
            return lines
        if line:
            key, _, value = line.partition(": ")
            lines.append((key, value))


def comparable(headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [(k, "*" if k in VOLATILE else v) for k, v in headers]


def exchanges(scenario: str) -> list[tuple[str, list[str], list[list[tuple[str, str]]]]]:
    """The recording as (kind, lines, messages Asterisk sent next): a banner or an action with its answers."""
    steps: list[tuple[str, list[str], list[list[tuple[str, str]]]]] = []
    for kind, lines in Recordings._messages(FIXTURES / f"{scenario}.txt"):
        if kind == "received":
            steps[-1][2].append([(k, v) for k, _, v in (line.partition(": ") for line in lines)])
        else:
            steps.append((kind, lines, []))
    return steps


@pytest.mark.parametrize("scenario", ["login", "members", "status"])
async def test_the_fake_answers_a_recorded_session_as_asterisk_did(
        fake_ami: FakeAmi, scenario: str) -> None:  # noqa: F811
    """The answer to each action first, as recorded; the messages after it in any order (app_queue lists
    members from a hash table: their order is not part of the protocol)."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    async with asyncio.timeout(5):
        for kind, lines, answers in exchanges(scenario):
            if kind == "banner":
                if writer is not None:
                    writer.close()
                reader, writer = await asyncio.open_connection(fake_ami.host, fake_ami.port)
                assert (await reader.readline()).decode().rstrip("\r\n") == lines[0]
            else:
                assert reader is not None and writer is not None
                wire = [line.replace("Secret: ********", f"Secret: {SECRET}") for line in lines]
                writer.write(("\r\n".join(wire) + "\r\n\r\n").encode())
            got = [comparable(await read_message(reader)) for _ in answers]  # type: ignore[arg-type]
            want = [comparable(a) for a in answers]
            assert got[:1] == want[:1]
            assert sorted(got[1:]) == sorted(want[1:])
    if writer is not None:
        writer.close()
