"""Demo agents: PJSIP endpoints ``agent-<id>`` that register, answer every call, talk, hang up.

The sandbox's skill-group queues (config/asterisk/queues.conf.j2) need someone to answer. Each
demo agent of ``config/sandbox.yaml`` (``agents:``) is one SIPp process in server mode on the
agent's SIP port, running a UAS scenario that answers each INVITE, streams a tone (the agent
"talking") for the agent's talk time, then sends BYE: the agent, not the caller, ends the call,
after a known time (the wait-estimate test relies on known handle times).

SIPp in server mode cannot send a REGISTER of its own, so a second, short-lived SIPp run (a UAC)
registers the agent's endpoint with a Contact pointing at the answering process's port, answering
Asterisk's digest challenge, and runs again every ``refresh_s`` to keep the registration alive and
once more with ``Expires: 0`` when the agent stops. Asterisk identifies the agent by the user in
From (``endpoint_identifier_order = username,ip``), so callers on the same address still reach the
``caller`` endpoint.

The SIP password (HOTLINE_AGENT_SIP_PASSWORD) is read from the environment or the sandbox env file
and written only into scenario files in a private (0700) folder: never on a command line.

``python -m tests.support.agents serve`` runs them for ``make run``; ``logins`` prints each
agent's endpoint and groups for ``hotline agents login``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from agi_app.config import read_env_file

REPO = Path(__file__).resolve().parents[2]
SANDBOX_VALUES = REPO / "config" / "sandbox.yaml"
SANDBOX_ENV_FILES = (REPO / ".run" / "hotline.env", REPO / "config" / "sandbox.env")
PASSWORD_KEY = "HOTLINE_AGENT_SIP_PASSWORD"

#: Seconds SIPp gets to register (or unregister) before the attempt counts as failed.
REGISTER_BUDGET_S = 5.0
#: Registration lifetime asked for, and how often it is renewed (well before it lapses).
REGISTER_EXPIRES_S = 300
REFRESH_S = 120.0
#: Seconds a stopping agent's SIPp gets to exit on SIGTERM before it is killed.
STOP_GRACE_S = 3.0

#: The agent's voice: a steady tone, one second of 8 kHz mu-law looped by SIPp's rtp_stream.
TONE_HZ = 425
_TONE_FILE = REPO / ".run" / "agents" / f"tone-{TONE_HZ}hz.ulaw"

_ANSWERED = "HOTLINE_AGENT_ANSWERED"
_AGENT_BYE = "HOTLINE_AGENT_HUNG_UP"
_CALLER_BYE = "HOTLINE_CALLER_HUNG_UP"

_ID = re.compile(r"^[0-9A-Za-z_-]{1,32}$")
_PASSWORD = re.compile(r"^[!-~]{4,64}$")  # printable ASCII, no spaces
_SCENARIO_UNSAFE = re.compile(r"[\s\]\[<>&\"']")


class AgentError(Exception):
    """A demo agent could not be started or registered."""


@dataclass(frozen=True)
class AgentSpec:
    """One demo agent as config/sandbox.yaml describes it."""

    id: str
    name: str
    groups: tuple[str, ...]
    sip_port: int
    media_port: int
    talk_s: float

    @property
    def endpoint(self) -> str:
        """The PJSIP endpoint (and AOR) name; the queue member interface is PJSIP/<endpoint>."""
        return f"agent-{self.id}"

    def validate(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"agent id must match {_ID.pattern}: {self.id!r}")
        if not self.groups:
            raise ValueError(f"agent {self.id} has no groups")
        if not 1024 <= self.sip_port <= 65535 or not 1024 <= self.media_port <= 65531:
            raise ValueError(f"agent {self.id}: ports out of range")
        if self.talk_s <= 0:
            raise ValueError(f"agent {self.id}: talk_s must be > 0")


def load_agents(values_path: Path = SANDBOX_VALUES) -> list[AgentSpec]:
    """The ``agents:`` list of the sandbox values file, validated."""
    data = yaml.safe_load(values_path.read_text(encoding="utf-8")) or {}
    specs = []
    for row in data.get("agents") or []:
        spec = AgentSpec(id=str(row["id"]), name=str(row["name"]), groups=tuple(row["groups"]),
                         sip_port=int(row["sip_port"]), media_port=int(row["media_port"]),
                         talk_s=float(row["talk_s"]))
        spec.validate()
        specs.append(spec)
    return specs


def sip_password(env: dict[str, str] | None = None) -> str:
    """The agents' SIP password: the environment first, then the sandbox env files."""
    value = (env or os.environ).get(PASSWORD_KEY)
    for path in SANDBOX_ENV_FILES:
        if value:
            break
        if path.is_file():
            value = read_env_file(path).get(PASSWORD_KEY)
    if not value or not _PASSWORD.match(value) or _SCENARIO_UNSAFE.search(value):
        raise AgentError(f"{PASSWORD_KEY} is missing or not 4-64 printable characters without quotes/brackets")
    return value


# ----------------------------------------------------------------------------- scenarios


def _cdata(text: str) -> str:
    return "<![CDATA[\n" + text + "\n  ]]>"


def register_scenario(spec: AgentSpec, password: str, expires_s: int, *, registrar: str = "127.0.0.1") -> str:
    """A UAC scenario: REGISTER the agent's AOR with its answering port as Contact, answer the
    digest challenge, expect 200 (``expires_s`` 0 removes the registration)."""
    user = spec.endpoint

    def register(cseq: int, auth: str) -> str:
        return "\n".join(line for line in (
            f"    REGISTER sip:{registrar} SIP/2.0",
            "    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
            f"    From: <sip:{user}@{registrar}>;tag=[pid]reg[call_number]",
            f"    To: <sip:{user}@{registrar}>",
            "    Call-ID: [call_id]",
            f"    CSeq: {cseq} REGISTER",
            f"    Contact: <sip:{user}@127.0.0.1:{spec.sip_port}>",
            f"    Expires: {expires_s}",
            auth,
            "    Max-Forwards: 70",
            "    User-Agent: hotline-demo-agent",
            "    Content-Length: 0",
        ) if line)

    credentials = f"    [authentication username={user} password={password}]"
    return "\n".join([
        '<?xml version="1.0" encoding="ISO-8859-1" ?>',
        f'<scenario name="register {user}">',
        f'  <send retrans="500">{_cdata(register(1, ""))}</send>',
        '  <recv response="401" auth="true"/>',
        f'  <send retrans="500">{_cdata(register(2, credentials))}</send>',
        '  <recv response="200"/>',
        "</scenario>",
        "",
    ])


_RESPONSE_HEADERS = """\
    [last_Via:]
    [last_From:]
    [last_To:]{tag}
    [last_Call-ID:]
    [last_CSeq:]
    Contact: <sip:{user}@[local_ip]:[local_port]>"""

_SDP = """\
    v=0
    o=- 1 1 IN IP[local_ip_type] [local_ip]
    s=-
    c=IN IP[media_ip_type] [media_ip]
    t=0 0
    m=audio [media_port] RTP/AVP 0 101
    a=rtpmap:0 PCMU/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-15
    a=ptime:20
    a=sendrecv"""


def answer_scenario(spec: AgentSpec, tone: Path) -> str:
    """A UAS scenario for every call to the agent: ring, answer with PCMU, talk (the tone) for
    ``talk_s``, then BYE; if the caller hangs up first, answer their BYE instead."""
    user = spec.endpoint
    tag = ";tag=[pid]agent[call_number]"
    headers = _RESPONSE_HEADERS.format(user=user, tag=tag)
    ringing = f"    SIP/2.0 180 Ringing\n{headers}\n    Content-Length: 0"
    ok = (f"    SIP/2.0 200 OK\n{headers}\n    Content-Type: application/sdp\n"
          f"    Content-Length: [len]\n\n{_SDP}")
    bye = "\n".join([
        "    BYE [$asterisk_contact] SIP/2.0",
        "    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        f"    From: <sip:{user}@[local_ip]:[local_port]>{tag}",
        "    To: [$caller_from]",
        "    Call-ID: [call_id]",
        "    CSeq: 2 BYE",
        "    Max-Forwards: 70",
        "    Content-Length: 0",
    ])
    bye_ok = "\n".join(["    SIP/2.0 200 OK", "    [last_Via:]", "    [last_From:]", "    [last_To:]",
                        "    [last_Call-ID:]", "    [last_CSeq:]", "    Content-Length: 0"])
    talk_ms = max(1, round(spec.talk_s * 1000))
    return "\n".join([
        '<?xml version="1.0" encoding="ISO-8859-1" ?>',
        f'<scenario name="demo agent {user}">',
        '  <recv request="INVITE" crlf="true">',
        "    <action>",
        '      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="caller_from"/>',
        '      <ereg regexp="&lt;([^&gt;]*)&gt;" search_in="hdr" header="Contact:" '
        'assign_to="contact_all,asterisk_contact"/>',
        "    </action>",
        "  </recv>",
        f"  <send>{_cdata(ringing)}</send>",
        f'  <send retrans="500">{_cdata(ok)}</send>',
        '  <recv request="ACK" crlf="true"/>',
        "  <nop><action>",
        f'    <exec rtp_stream="{tone},-1,0"/>',
        f'    <log message="{_ANSWERED} [call_id]"/>',
        "  </action></nop>",
        f'  <recv request="BYE" timeout="{talk_ms}" ontimeout="agent_bye" next="caller_bye"/>',
        '  <label id="agent_bye"/>',
        f'  <nop><action><log message="{_AGENT_BYE} [call_id]"/></action></nop>',
        f'  <send retrans="500">{_cdata(bye)}</send>',
        '  <recv response="200" timeout="5000" next="done"/>',
        '  <label id="caller_bye"/>',
        f'  <nop><action><log message="{_CALLER_BYE} [call_id]"/></action></nop>',
        f"  <send>{_cdata(bye_ok)}</send>",
        '  <label id="done"/>',
        '  <Reference variables="contact_all"/>',  # the whole match, unused: say so to SIPp
        "</scenario>",
        "",
    ])


def tone_file() -> Path:
    """One second of the agent's tone as raw 8 kHz mu-law (what rtp_stream sends as PCMU)."""
    if _TONE_FILE.is_file():
        return _TONE_FILE
    _TONE_FILE.parent.mkdir(parents=True, exist_ok=True)
    sox = shutil.which("sox")
    if not sox:
        raise AgentError("sox not found (scripts/sandbox deps installs it)")
    tmp = _TONE_FILE.with_suffix(f".tmp{os.getpid()}.ulaw")
    subprocess.run([sox, "-n", "-r", "8000", "-c", "1", "-t", "ul", str(tmp), "synth", "1", "sine", str(TONE_HZ),
                    "vol", "0.3"], check=True, capture_output=True, timeout=30)
    os.replace(tmp, _TONE_FILE)
    return _TONE_FILE


# ----------------------------------------------------------------------------- processes


def _sipp() -> str:
    path = shutil.which("sipp")
    if not path:
        raise AgentError("sipp not found (install sip-tester: scripts/sandbox deps)")
    return path


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _stop_process(proc: asyncio.subprocess.Process, grace_s: float = STOP_GRACE_S) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def start_uas(scenario: Path, host: str, port: int, media_port: int, log_path: Path,
                    who: str) -> asyncio.subprocess.Process:
    """SIPp answering on host:port with `scenario` (messages traced to `log_path`, errors next to
    it), once it is seen to have bound the port; raises AgentError naming `who` if it exits."""
    workdir = log_path.parent
    uas = await asyncio.create_subprocess_exec(
        _sipp(), "-sf", str(scenario), "-i", host, "-p", str(port), "-mp", str(media_port), "-nostdin", "-aa",
        "-trace_logs", "-log_file", str(log_path), "-trace_err", "-error_file", str(workdir / "errors.log"),
        cwd=workdir, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(0.3)  # SIPp binds its port before it reads the network
    except BaseException:
        await _stop_process(uas)
        raise
    if uas.returncode is not None:
        raise AgentError(f"{who}: SIPp exited ({uas.returncode}); is UDP port {port} free? See {workdir}")
    return uas


def marked_lines(log_path: Path, mark: str) -> list[str]:
    """What follows `mark` on each line of a SIPp message log that has it (the scenarios log a
    mark and the Call-ID for each thing a test asserts on), in order; none before SIPp wrote any."""
    if not log_path.is_file():
        return []
    return [line.split(mark, 1)[1].strip() for line in log_path.read_text(errors="replace").splitlines()
            if mark in line]


class DemoAgent:
    """One running demo agent: its answering SIPp and its registration, owned until ``stop``."""

    def __init__(self, spec: AgentSpec, password: str, workdir: Path, *, target: str = "127.0.0.1:5060") -> None:
        self.spec = spec
        self._password = password
        self._dir = workdir / spec.endpoint
        self._target = target
        self._uas: asyncio.subprocess.Process | None = None
        self._refresh: asyncio.Task[None] | None = None

    def __repr__(self) -> str:  # never the password
        return f"DemoAgent({self.spec.endpoint}, port={self.spec.sip_port})"

    @property
    def log_path(self) -> Path:
        return self._dir / "agent.log"

    def talking(self, talk_s: float) -> DemoAgent:
        """The same agent (endpoint, ports, password) talking `talk_s` per call; not started. Only
        one of the two can run at a time: they answer on the same port."""
        workdir = self._dir.parent / f"talk-{talk_s:g}s"
        return DemoAgent(replace(self.spec, talk_s=talk_s), self._password, workdir, target=self._target)

    @property
    def answered(self) -> list[str]:
        """SIP Call-IDs of the calls this agent answered, in order."""
        return marked_lines(self.log_path, _ANSWERED)

    @property
    def hung_up(self) -> list[str]:
        """Call-IDs of the calls the agent ended (its talk time ran out)."""
        return marked_lines(self.log_path, _AGENT_BYE)

    async def start(self) -> None:
        """Start answering on the agent's port, then register; fails if either does not work."""
        self._dir.mkdir(parents=True, exist_ok=True)
        scenario = self._dir / "answer.xml"
        scenario.write_text(answer_scenario(self.spec, tone_file()), encoding="ISO-8859-1")
        self._uas = await start_uas(scenario, "127.0.0.1", self.spec.sip_port, self.spec.media_port,
                                    self.log_path, self.spec.endpoint)
        try:
            await self.register(REGISTER_EXPIRES_S)
        except BaseException:
            await _stop_process(self._uas)
            raise
        self._refresh = asyncio.create_task(self._keep_registered(), name=f"register {self.spec.endpoint}")

    async def register(self, expires_s: int) -> None:
        """One REGISTER transaction (0 = unregister), within REGISTER_BUDGET_S."""
        name = "unregister" if expires_s == 0 else "register"
        scenario = self._dir / f"{name}.xml"
        fd = os.open(scenario, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the password
        with os.fdopen(fd, "w", encoding="ISO-8859-1") as out:
            out.write(register_scenario(self.spec, self._password, expires_s))
        try:
            proc = await asyncio.create_subprocess_exec(
                _sipp(), self._target, "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1",
                "-p", str(_free_udp_port()), "-nostdin", "-timeout", f"{int(REGISTER_BUDGET_S)}s",
                "-trace_err", "-error_file", str(self._dir / f"{name}-errors.log"),
                cwd=self._dir, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                _, err = await asyncio.wait_for(proc.communicate(), REGISTER_BUDGET_S + 2)
            except (TimeoutError, asyncio.CancelledError):
                await _stop_process(proc, 0.5)
                raise
        finally:
            scenario.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise AgentError(f"{self.spec.endpoint}: {name} failed (SIPp {proc.returncode}): "
                             f"{err.decode(errors='replace').strip()[-300:]}")

    async def _keep_registered(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            if self._uas is None or self._uas.returncode is not None:
                # Nobody answers on the port any more: let the registration lapse (Asterisk's
                # qualify already marks the phone unavailable) rather than advertise a dead phone.
                print(f"agents: {self.spec.endpoint}: SIPp exited; no longer registering", file=sys.stderr)
                return
            try:
                await self.register(REGISTER_EXPIRES_S)
            except AgentError as exc:  # Asterisk restarting: try again at the next refresh
                print(f"agents: {exc}", file=sys.stderr)

    async def stop(self) -> None:
        """Unregister (best effort: Asterisk may be gone) and stop answering."""
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        try:
            if self._uas is not None and self._uas.returncode is None:
                with contextlib.suppress(AgentError, TimeoutError):
                    await self.register(0)
        finally:
            if self._uas is not None:
                await _stop_process(self._uas)


@contextlib.asynccontextmanager
async def running_agents(specs: Sequence[AgentSpec], *, password: str | None = None,
                         talk_s: float | None = None) -> AsyncIterator[dict[str, DemoAgent]]:
    """Start ``specs`` (all registered on return; ``talk_s`` overrides every agent's talk time),
    yield them by endpoint name, and always stop them on exit."""
    secret = password or sip_password()
    chosen = [replace(spec, talk_s=talk_s) if talk_s is not None else spec for spec in specs]
    with tempfile.TemporaryDirectory(prefix="hotline-agents-") as tmp:
        agents = {spec.endpoint: DemoAgent(spec, secret, Path(tmp)) for spec in chosen}
        started: list[DemoAgent] = []

        async def start(agent: DemoAgent) -> None:
            await agent.start()
            started.append(agent)

        try:
            results = await asyncio.gather(*(start(a) for a in agents.values()), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise failures[0]
            yield agents
        finally:
            await asyncio.gather(*(agent.stop() for agent in started))


@contextlib.asynccontextmanager
async def talk_times(agents: Mapping[str, DemoAgent], talk_s: Mapping[str, float]) -> AsyncIterator[dict[str, DemoAgent]]:
    """Swap running agents (by endpoint) for the same agents talking other times — a test's known
    handle times — and back on exit. Their queue logins stay: membership follows the endpoint."""
    originals = [agents[endpoint] for endpoint in talk_s]
    swapped = {agent.spec.endpoint: agent.talking(talk_s[agent.spec.endpoint]) for agent in originals}
    stopped: list[DemoAgent] = []
    started: list[DemoAgent] = []

    async def swap(original: DemoAgent, agent: DemoAgent) -> None:
        await original.stop()
        stopped.append(original)
        await agent.start()
        started.append(agent)

    try:
        results = await asyncio.gather(*(swap(o, a) for o, a in zip(originals, swapped.values(), strict=True)),
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        yield swapped
    finally:
        await asyncio.gather(*(agent.stop() for agent in started))
        await asyncio.gather(*(original.start() for original in stopped))


# ----------------------------------------------------------------------------- command line


async def _serve(specs: Sequence[AgentSpec], talk_s: float | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_agents(specs, talk_s=talk_s) as agents:
        for agent in agents.values():
            spec = agent.spec
            print(f"agents: {spec.endpoint} ({spec.name}) registered on udp 127.0.0.1:{spec.sip_port}, "
                  f"groups {', '.join(spec.groups)}, talks {spec.talk_s:g} s", flush=True)
        await stop.wait()
        print("agents: stopping", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.support.agents serve [--talk S] [--only ID ...]`` or ``logins``."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.agents", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="register the demo agents and answer their calls until SIGTERM/Ctrl-C")
    serve.add_argument("--talk", type=float, default=None, help="talk seconds for every agent (default: per agent)")
    serve.add_argument("--only", action="append", default=[], help="agent id to run (repeatable; default all)")
    sub.add_parser("logins", help="print '<endpoint> <group> ...' per agent, for `hotline agents login`")
    args = parser.parse_args(argv)
    try:
        specs = load_agents()
    except (OSError, KeyError, ValueError, yaml.YAMLError) as exc:
        print(f"agents: error: {SANDBOX_VALUES}: {exc}", file=sys.stderr)
        return 2
    if args.command == "logins":
        for spec in specs:
            print(spec.endpoint, *spec.groups)
        return 0
    if args.only:
        specs = [s for s in specs if s.id in set(args.only)]
        if not specs:
            print("agents: error: no agent matches --only", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_serve(specs, args.talk))
    except AgentError as exc:
        print(f"agents: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
