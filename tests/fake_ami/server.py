"""A fake Asterisk AMI on loopback TCP for the fast suite, speaking AMI's real line protocol.

It greets with the recorded `Asterisk Call Manager/...` banner, reads `Key: value` action blocks ended
by a blank line, and answers with clones of recorded responses, event lists and events
(tests/fake_ami/recordings.py) carrying its own queue state: the sandbox's queues as recorded, agents
added, paused and removed by the actions, callers the test puts in a queue.

Strict where real Asterisk is: a refused login closes the connection, actions before login are
violations, and so is an action without ActionID or a header line without `: `. `violations` lists
them; the pytest fixture fails the test that caused any.

Faults for the tests: `drop()` closes every connection (the client must reconnect), `silent` reads
actions and answers none (the client's budgets must fire), `push()` sends an event to every logged-in
connection.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from .recordings import Headers, clone, get, recordings

EOL = "\r\n"
USER, SECRET = "hotline", "test-secret"

#: Headers each action we support must carry (beyond Action and ActionID), as Asterisk requires.
REQUIRED = {
    "Login": ("Username", "Secret"), "Ping": (), "Logoff": (),
    "QueueStatus": (), "QueueSummary": (),
    "QueueAdd": ("Queue", "Interface"), "QueueRemove": ("Queue", "Interface"),
    "QueuePause": ("Interface", "Paused"),
}


@dataclass
class Member:
    """A queue member as app_queue keeps it (the fields QueueMember* messages carry)."""

    interface: str
    name: str
    state_interface: str
    membership: str = "dynamic"
    penalty: str = "0"
    calls_taken: int = 0
    in_call: bool = False
    status: int = 1  # AST_DEVICE_NOT_INUSE
    paused: bool = False
    paused_reason: str = ""
    login_time: int = field(default_factory=lambda: int(time.time()))

    def as_event(self, name: str, queue: str) -> Headers:
        return clone(recordings().event(name), Queue=queue, MemberName=self.name, Interface=self.interface,
                     StateInterface=self.state_interface, **self._common())

    def as_status_item(self, queue: str, action_id: str) -> Headers:
        return clone(recordings().list_event("QueueMember"), Queue=queue, Name=self.name, Location=self.interface,
                     StateInterface=self.state_interface, ActionID=action_id, **self._common())

    def _common(self) -> dict[str, object]:
        return dict(Membership=self.membership, Penalty=self.penalty, CallsTaken=self.calls_taken,
                    LoginTime=self.login_time, InCall=int(self.in_call), Status=self.status,
                    Paused=int(self.paused), PausedReason=self.paused_reason)


@dataclass
class Caller:
    channel: str
    unique_id: str
    joined: float = field(default_factory=time.monotonic)


@dataclass
class Queue:
    name: str
    params: Headers  # the recorded QueueParams item of this queue
    members: dict[str, Member] = field(default_factory=dict)
    callers: list[Caller] = field(default_factory=list)


@dataclass
class Connection:
    writer: asyncio.StreamWriter
    logged_in: bool = False
    wants_events: bool = True


class FakeAmi:
    def __init__(self, user: str = USER, secret: str = SECRET) -> None:
        self.user, self.secret = user, secret
        self.host, self.port = "127.0.0.1", 0
        self.queues: dict[str, Queue] = {}
        self.actions: list[dict[str, str]] = []  # every action received, in order (Secret masked)
        self.raw: list[str] = []  # every action block as received, for injection checks
        self.violations: list[str] = []
        self.silent = False
        self.logins = 0
        self._connections: list[Connection] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._load_sandbox_queues()

    def _load_sandbox_queues(self) -> None:
        status = recordings().queue_status_all()
        for item in status.events:
            queue = get(item, "Queue")
            if get(item, "Event") == "QueueParams":
                self.queues[queue] = Queue(queue, item)
            elif get(item, "Event") == "QueueMember":
                self.queues[queue].members[get(item, "Location")] = Member(
                    interface=get(item, "Location"), name=get(item, "Name"),
                    state_interface=get(item, "StateInterface"), membership=get(item, "Membership"),
                    status=int(get(item, "Status")), login_time=int(get(item, "LoginTime")))

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection (start() again listens on the same port)."""
        if self._server is not None:
            self._server.close()
            self.drop()
            await self._server.wait_closed()
            self._server = None
        if self._handlers:  # each ends at the EOF of its closed connection
            await asyncio.wait(set(self._handlers), timeout=2)

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def drop(self) -> None:
        """Close every connection, as an Asterisk restart or a network cut does."""
        for conn in self._connections:
            conn.writer.close()
        self._connections.clear()

    @property
    def connections(self) -> int:
        return sum(1 for c in self._connections if c.logged_in)

    # --- the test's hand on the queues ------------------------------------------------------------
    def push(self, name: str, **values: object) -> None:
        """Send a recorded event `name` with these headers replaced to every logged-in connection."""
        self._broadcast(clone(recordings().event(name), **values))

    def add_caller(self, queue: str, channel: str, unique_id: str) -> None:
        q = self.queues[queue]
        q.callers.append(Caller(channel, unique_id))
        self.push("QueueCallerJoin", Queue=queue, Channel=channel, Uniqueid=unique_id, Position=len(q.callers),
                  Count=len(q.callers))

    def set_member(self, queue: str, interface: str, **changes: object) -> None:
        """Change a member (status, in_call, calls_taken...) and send QueueMemberStatus as app_queue does."""
        member = self.queues[queue].members[interface]
        for key, value in changes.items():
            setattr(member, key, value)
        self._broadcast(member.as_event("QueueMemberStatus", queue))

    # --- the protocol -------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = Connection(writer)
        self._connections.append(conn)
        try:
            writer.write((recordings().banner + EOL).encode())
            block: list[str] = []
            while raw := await reader.readline():
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line:
                    block.append(line)
                    continue
                if block:
                    self.raw.append("\n".join(block))
                    if not self._handle(conn, block):
                        break
                    block = []
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if conn in self._connections:
                self._connections.remove(conn)
            writer.close()
            self._handlers.discard(task)

    def _handle(self, conn: Connection, block: list[str]) -> bool:
        """Answer one action; False to close the connection."""
        headers: dict[str, str] = {}
        for line in block:
            key, sep, value = line.partition(": ")
            if not sep:
                self.violations.append(f"AMI line without ': ': {line!r}")
                continue
            headers[key] = value
        action, action_id = headers.get("Action", ""), headers.get("ActionID", "")
        self.actions.append({k: ("********" if k == "Secret" else v) for k, v in headers.items()})
        if action not in REQUIRED:
            self.violations.append(f"action the fake does not know: {action!r}")
            return True
        missing = [h for h in ("ActionID", *REQUIRED[action]) if h not in headers]
        if missing:
            self.violations.append(f"{action} without {missing}")
            return True
        if action != "Login" and not conn.logged_in:
            self.violations.append(f"{action} before Login")
            return True
        if self.silent:
            return True
        if action == "Login":
            return self._login(conn, headers, action_id)
        getattr(self, f"_{action.lower()}")(conn, headers, action_id)
        return True

    def _send(self, conn: Connection, *messages: Headers) -> None:
        for message in messages:
            conn.writer.write(("".join(f"{k}: {v}{EOL}" for k, v in message) + EOL).encode())

    def _answer(self, conn: Connection, action: str, message: str, action_id: str) -> None:
        self._send(conn, clone(recordings().response(action, message), ActionID=action_id))

    def _broadcast(self, message: Headers) -> None:
        for conn in self._connections:
            if conn.logged_in and conn.wants_events:
                self._send(conn, message)

    def _login(self, conn: Connection, h: dict[str, str], action_id: str) -> bool:
        if h["Username"] != self.user or h["Secret"] != self.secret:
            self._answer(conn, "Login", "Authentication failed", action_id)
            return False  # Asterisk ends the session after a refused login
        conn.logged_in = True
        conn.wants_events = h.get("Events", "on").lower() != "off"
        self.logins += 1
        self._answer(conn, "Login", "Authentication accepted", action_id)
        if conn.wants_events:
            self._send(conn, recordings().event("FullyBooted"))
        return True

    def _ping(self, conn: Connection, h: dict[str, str], action_id: str) -> None:
        ping = recordings().exchanges
        template = next(ex.response for ex in ping if get(ex.action, "Action") == "Ping")
        self._send(conn, clone(template, ActionID=action_id, Timestamp=f"{time.time():.6f}"))

    def _logoff(self, conn: Connection, h: dict[str, str], action_id: str) -> None:
        self._answer(conn, "Logoff", "Thanks for all the fish.", action_id)

    def _list(self, conn: Connection, action: str, items: list[Headers], action_id: str) -> None:
        follows = {"QueueStatus": "Queue status will follow", "QueueSummary": "Queue summary will follow"}[action]
        complete = recordings().list_event(f"{action}Complete")
        self._send(conn, clone(recordings().response(action, follows), ActionID=action_id), *items,
                   clone(complete, ActionID=action_id, ListItems=len(items)))

    def _selected(self, h: dict[str, str]) -> list[Queue]:
        wanted = h.get("Queue")
        return [q for name, q in self.queues.items() if wanted in (None, "", name)]

    def _queuestatus(self, conn: Connection, h: dict[str, str], action_id: str) -> None:
        items: list[Headers] = []
        now = time.monotonic()
        for q in self._selected(h):
            items.append(clone(q.params, Calls=len(q.callers), ActionID=action_id))
            items += [m.as_status_item(q.name, action_id) for m in q.members.values()]
            items += [clone(recordings().list_event("QueueEntry"), Queue=q.name, Position=i, Channel=c.channel,
                            Uniqueid=c.unique_id, Wait=int(now - c.joined), ActionID=action_id)
                      for i, c in enumerate(q.callers, start=1)]
        self._list(conn, "QueueStatus", items, action_id)

    def _queuesummary(self, conn: Connection, h: dict[str, str], action_id: str) -> None:
        items = []
        for q in self._selected(h):
            logged_in = [m for m in q.members.values() if m.status not in (4, 5)]
            available = [m for m in logged_in if not m.paused and not m.in_call and m.status == 1]
            items.append(clone(recordings().list_event("QueueSummary"), Queue=q.name, LoggedIn=len(logged_in),
                               Available=len(available), Callers=len(q.callers), ActionID=action_id))
        self._list(conn, "QueueSummary", items, action_id)

    def _queueadd(self, conn: Connection, h: dict[str, str], action_id: str) -> None:
        queue = self.queues.get(h["Queue"])
        if queue is None:
            return self._answer(conn, "QueueAdd", "Unable to add interface to queue: No such queue", action_id)
        if h["Interface"] in queue.members:
            return self._answer(conn, "QueueAdd", "Unable to add interface: Already there", action_id)
        member = Member(h["Interface"], h.get("MemberName") or h["Interface"],
                        h.get("StateInterface") or h["Interface"], penalty=h.get("Penalty", "0"),
                        status=4 if h["Interface"].startswith("PJSIP/") else 1)  # no endpoint: invalid
        queue.members[member.interface] = member
        self._answer(conn, "QueueAdd", "Added interface to queue", action_id)
        self._broadcast(member.as_event("QueueMemberAdded", queue.name))

    def _queueremove(self, conn: Connection, h: dict[str, str], action_id: str) -> None:
        queue = self.queues.get(h["Queue"])
        if queue is None:
            return self._answer(conn, "QueueRemove", "Unable to remove interface from queue: No such queue",
                                action_id)
        member = queue.members.pop(h["Interface"], None)
        if member is None:
            return self._answer(conn, "QueueRemove", "Unable to remove interface: Not there", action_id)
        self._answer(conn, "QueueRemove", "Removed interface from queue", action_id)
        self._broadcast(member.as_event("QueueMemberRemoved", queue.name))

    def _queuepause(self, conn: Connection, h: dict[str, str], action_id: str) -> None:
        paused = h["Paused"].lower() in ("true", "1", "yes")
        found = [(q, q.members[h["Interface"]]) for q in self._selected(h) if h["Interface"] in q.members]
        if not found:
            return self._answer(conn, "QueuePause", "Interface not found", action_id)
        for _, member in found:
            member.paused, member.paused_reason = paused, h.get("Reason", "") if paused else ""
        self._answer(conn, "QueuePause", f"Interface {'paused' if paused else 'unpaused'} successfully", action_id)
        for queue, member in found:
            self._broadcast(member.as_event("QueueMemberPause", queue.name))


_ids = itertools.count(1)


def unique_id() -> str:
    """A channel Uniqueid as Asterisk writes them (epoch.seconds.sequence)."""
    return f"{int(time.time())}.{next(_ids)}"
