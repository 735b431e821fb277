"""The AMI connection: login within a budget, reconnect with capped backoff, actions with time budgets,
typed events to bounded subscriptions. The only module that knows AMI's wire details.

Built on panoramisk's `AMIProtocol` for what it does well — framing the byte stream into messages and
parsing `Key: value` headers (`Message.from_line`) — but not on its `Manager`, which reconnects with an
untracked `call_later` at a fixed delay, logs the loss at ERROR on every retry, re-sends unanswered
actions after a reconnect (an agent logged in twice, late), and never resolves a QueueAdd (it takes
"Added interface to queue" for the start of an event list). Here one supervising task owns the
connection; every action waits at most its budget and then raises; nothing is re-sent. The secret is
written to the socket only: never to a log, a repr or an exception.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from agi_app.ami.events import AmiConnected, AmiEvent, parse_event
from agi_app.budget import backoff_s
from agi_app.config import DEFAULTS, ConfigError, Settings
from agi_app.logs import log_event

log = logging.getLogger("hotline.ami")
#: panoramisk's own DEBUG lines (every parsed message); Asterisk never echoes the secret.
wire_log = logging.getLogger("hotline.ami.wire")

EOL = "\r\n"
#: The most bytes one AMI message may take (QueueStatus sends one message per member or caller).
MAX_MESSAGE = 1 << 20


class AmiError(Exception):
    """An AMI action or the connection failed."""


class AmiUnavailable(AmiError):
    """Asterisk's AMI could not be reached, or the connection was lost before the answer."""


class AmiTimeout(AmiUnavailable):
    """Connected, but Asterisk did not answer within the time budget."""


class AmiLoginRefused(AmiError):
    """Asterisk refused our credentials (HOTLINE_AMI_USER / HOTLINE_AMI_PASSWORD)."""


class AmiActionFailed(AmiError):
    """Asterisk answered `Response: Error` (e.g. "Unable to add interface: Already there")."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"AMI {action} refused: {message}")
        self.action, self.message = action, message


@dataclass(frozen=True)
class AmiResponse:
    """An action's answer: its own headers and, for an event-list action, the events before `...Complete`."""

    action: str
    response: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)
    events: tuple[Mapping[str, str], ...] = ()


def check_header(key: str, value: str) -> None:
    """Refuse what would end an AMI line and smuggle in another header or action (CR/LF injection)."""
    if not key or any(c in key for c in ":\r\n") or any(c in value for c in "\r\n"):
        raise ValueError(f"AMI header {key!r} refused: it would break the AMI line")


def _headers(message: Message) -> dict[str, str]:
    """A panoramisk message as plain headers (a repeated header keeps its last value)."""
    return {k: (v[-1] if isinstance(v, list) else str(v)) for k, v in message.items()}


class _Pending:
    """One action waiting for its response (and, for an event list, its `complete` event)."""

    def __init__(self, action: str, complete: str | None) -> None:
        self.action, self.complete = action, complete
        self.future: asyncio.Future[AmiResponse] = asyncio.get_running_loop().create_future()
        self.response: dict[str, str] | None = None
        self.events: list[dict[str, str]] = []

    def add(self, headers: dict[str, str]) -> bool:
        """Take one message; True once the answer is whole."""
        if self.response is None:
            if "Response" not in headers:
                return False
            self.response = headers
            return self.complete is None or headers["Response"] != "Success"
        if headers.get("Event") == self.complete:
            return True
        self.events.append(headers)
        return False

    def result(self) -> AmiResponse:
        assert self.response is not None
        return AmiResponse(self.action, self.response.get("Response", ""), self.response.get("Message", ""),
                           self.response, tuple(self.events))


class _Protocol(AMIProtocol):
    """panoramisk's framing and parsing, with our own matching of answers to actions."""

    def __init__(self, client: AmiClient) -> None:
        self._client = client
        self._unparsed = b""
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self.lost = asyncio.Event()
        self.closed: bool = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.encoding = "utf-8"
        self.version = ""  # the banner: panoramisk would log it in its own format; we have no use for it
        self.log = wire_log

    def data_received(self, data: bytes) -> None:
        """Hand panoramisk whole messages only: it decodes each chunk on its own, so a character split
        between two TCP reads (a caller's name in Chinese) would be lost. A peer that sends more than
        MAX_MESSAGE bytes without ending a message is not Asterisk: the connection is dropped."""
        self._unparsed += data
        end = self._unparsed.rfind(b"\r\n\r\n")
        if end < 0:
            if len(self._unparsed) > MAX_MESSAGE:
                log_event(log, "ami_garbage", level=logging.WARNING, bytes=len(self._unparsed))
                self.close()
            return
        whole, self._unparsed = self._unparsed[:end + 4], self._unparsed[end + 4:]
        super().data_received(whole)

    def send_action(self, action: str, headers: Iterable[tuple[str, str]], complete: str | None) -> _Pending:
        if self.closed:
            raise AmiUnavailable(f"AMI {action}: not connected")
        action_id = f"hotline-{next(self._ids)}"
        lines = [("Action", action), ("ActionID", action_id), *headers]
        for key, value in lines:
            check_header(key, value)
        pending = _Pending(action, complete)
        self._pending[action_id] = pending
        self.transport.write((EOL.join(f"{k}: {v}" for k, v in lines) + EOL + EOL).encode("utf-8"))
        return pending

    def forget(self, pending: _Pending) -> None:
        for action_id, candidate in list(self._pending.items()):
            if candidate is pending:
                del self._pending[action_id]

    def handle_message(self, message: Message) -> None:
        headers = _headers(message)
        pending = self._pending.get(headers.get("ActionID", ""))
        if pending is not None:
            if pending.add(headers):
                del self._pending[headers["ActionID"]]
                if not pending.future.done():
                    pending.future.set_result(pending.result())
            return
        if "Event" in headers:
            if headers["Event"] == "Shutdown":
                self.close()
            self._client._dispatch(parse_event(headers))

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(AmiUnavailable(f"AMI {pending.action}: connection lost"))
        self._pending.clear()
        if not self.closed:
            self.closed = True
            self.transport.close()
        self.lost.set()


class EventSubscription:
    """Events of the names asked for (all when None), plus `AmiConnected` after each (re)login, in a
    bounded queue. The socket is never held back for a slow reader: past the bound events are dropped
    and counted (`dropped`), and the reader resyncs on the next `AmiConnected` or by re-reading."""

    def __init__(self, client: AmiClient, names: frozenset[str] | None, size: int) -> None:
        self._client = client
        self.names = names
        self._queue: asyncio.Queue[AmiEvent] = asyncio.Queue(maxsize=size)
        self._closed = asyncio.Event()
        self.dropped = 0

    def _offer(self, event: AmiEvent) -> None:
        if self.names is not None and event.name not in self.names and not isinstance(event, AmiConnected):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:  # a reader stuck for good must not flood the log
                log_event(log, "ami_events_dropped", level=logging.WARNING, ami_event=event.name,
                          dropped=self.dropped)

    async def get(self) -> AmiEvent | None:
        """The next event; None once the subscription (or the client) is closed."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        if self._closed.is_set():
            return None
        getter = asyncio.ensure_future(self._queue.get())
        closer = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({getter, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closer.cancel()
            if not getter.done():
                getter.cancel()
        return getter.result() if getter.done() and not getter.cancelled() else None

    async def __aiter__(self) -> AsyncIterator[AmiEvent]:
        while (event := await self.get()) is not None:
            yield event

    def close(self) -> None:
        self._closed.set()
        self._client._unsubscribe(self)


class AmiClient:
    """One logged-in AMI connection, kept up by a supervising task.

    `start()` begins connecting (the server does not wait for Asterisk); `wait_connected()` waits for
    the login (the CLI does); `async with` does both and closes. Actions raise `AmiUnavailable` at once
    while disconnected, `AmiTimeout` past their budget, `AmiActionFailed` when Asterisk refuses.
    """

    def __init__(self, host: str, port: int, user: str, password: str, *,
                 connect_timeout: float = DEFAULTS.ami_connect_s, action_timeout: float = DEFAULTS.ami_action_s,
                 max_backoff: float = DEFAULTS.ami_reconnect_max_s, keepalive: float = DEFAULTS.ami_keepalive_s,
                 event_classes: str = "system,agent") -> None:
        self.host, self.port, self.user = host, port, user
        self.__password = password
        self._connect_timeout, self._action_timeout = connect_timeout, action_timeout
        self._max_backoff, self._keepalive = max_backoff, keepalive
        self._event_classes = event_classes
        self._protocol: _Protocol | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._logged_in = asyncio.Event()
        self._failure: AmiError | None = None
        self._attempted = asyncio.Event()  # set after each failed attempt, for wait_connected
        self._subscriptions: list[EventSubscription] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> AmiClient:
        """The client for HOTLINE_AMI_URL (tcp://host:port), _USER and _PASSWORD, with the AMI budgets."""
        settings.require("ami_user", "ami_password")
        url = urlsplit(settings.ami_url)
        if url.scheme != "tcp" or not url.hostname or url.username or url.password:
            raise ConfigError(f"HOTLINE_AMI_URL={settings.ami_url!r} must be tcp://HOST:PORT (credentials go in"
                              " HOTLINE_AMI_USER / HOTLINE_AMI_PASSWORD)")
        return cls(url.hostname, url.port or 5038, settings.ami_user, settings.ami_password,
                   connect_timeout=settings.ami_connect_s, action_timeout=settings.ami_action_s,
                   max_backoff=settings.ami_reconnect_max_s, keepalive=settings.ami_keepalive_s)

    def __repr__(self) -> str:
        return f"AmiClient({self.host}:{self.port}, user={self.user!r}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        """Logged in on a live connection right now."""
        return self._logged_in.is_set() and self._protocol is not None and not self._protocol.closed

    async def __aenter__(self) -> AmiClient:
        self.start()
        try:
            await self.wait_connected(first_attempt=True)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="ami-connection")

    async def wait_connected(self, timeout: float | None = None, *, first_attempt: bool = False) -> None:
        """Wait for the login, at most `timeout` (default: the connect budget). Raises what the last attempt
        met (`AmiLoginRefused` at once; `AmiUnavailable`), right after the first failed attempt when
        `first_attempt` (a one-shot command does not wait through the backoff)."""
        budget = self._connect_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(budget):
                while not self.connected:
                    if isinstance(self._failure, AmiLoginRefused) or (first_attempt and self._failure):
                        raise self._failure
                    self._attempted.clear()
                    waiters = {asyncio.ensure_future(self._logged_in.wait()),
                               asyncio.ensure_future(self._attempted.wait())}
                    try:
                        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for waiter in waiters:
                            waiter.cancel()
        except TimeoutError:
            raise self._failure or AmiUnavailable(f"AMI {self.host}:{self.port}: no login within {budget:g}s") \
                from None

    async def close(self) -> None:
        """Stop reconnecting, drop the connection, end every subscription; leaves no task behind."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.wait({self._supervisor})
            self._supervisor = None
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None
        self._logged_in.clear()
        for subscription in list(self._subscriptions):
            subscription.close()

    # --- actions ----------------------------------------------------------------------------
    async def action(self, name: str, headers: Mapping[str, str] | None = None, *, complete: str | None = None,
                     timeout: float | None = None) -> AmiResponse:
        """Send one action and wait, within `timeout` (default: the action budget), for its answer;
        `complete` names the event that ends its event list (e.g. QueueStatusComplete)."""
        protocol = self._protocol
        if protocol is None or not self.connected:
            raise AmiUnavailable(f"AMI {name}: not connected")
        response = await self._request(protocol, name, headers or {}, complete,
                                       self._action_timeout if timeout is None else timeout)
        if response.response == "Error":
            raise AmiActionFailed(name, response.message)
        return response

    async def ping(self) -> None:
        await self.action("Ping")

    @staticmethod
    async def _request(protocol: _Protocol, name: str, headers: Mapping[str, str], complete: str | None,
                       budget: float) -> AmiResponse:
        pending = protocol.send_action(name, headers.items(), complete)
        try:
            async with asyncio.timeout(budget):
                return await pending.future
        except TimeoutError:
            raise AmiTimeout(f"AMI {name}: no answer within {budget:g}s") from None
        finally:
            protocol.forget(pending)

    # --- events -----------------------------------------------------------------------------
    def subscribe(self, names: Iterable[str] | None = None, *, queue_size: int = 1000) -> EventSubscription:
        """Receive these events (None: all) from now on, across reconnects, until `close()`."""
        subscription = EventSubscription(self, None if names is None else frozenset(names), queue_size)
        self._subscriptions.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: EventSubscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def _dispatch(self, event: AmiEvent) -> None:
        for subscription in self._subscriptions:
            subscription._offer(event)

    # --- the connection ---------------------------------------------------------------------
    async def _supervise(self) -> None:
        """Connect and log in; on loss, reconnect after a jittered backoff that doubles up to the cap."""
        attempt, ever_connected = 0, False
        while True:
            protocol: _Protocol | None = None
            try:
                protocol = await self._connect_once()
            except AmiError as exc:
                self._failure = exc
                self._attempted.set()
                refused = isinstance(exc, AmiLoginRefused)
                log_event(log, "ami_login_refused" if refused else "ami_connect_failed", level=logging.WARNING,
                          host=f"{self.host}:{self.port}", user=self.user if refused else None,
                          attempt=attempt + 1, error=None if refused else str(exc))
            else:
                self._protocol, self._failure = protocol, None
                self._logged_in.set()
                log_event(log, "ami_reconnected" if ever_connected else "ami_connected",
                          host=f"{self.host}:{self.port}", user=self.user, attempts=attempt + 1)
                ever_connected, attempt = True, 0
                self._dispatch(AmiConnected("AmiConnected"))
                try:
                    await self._keep_alive(protocol)
                finally:
                    self._logged_in.clear()
                    protocol.close()
                self._failure = AmiUnavailable(f"AMI {self.host}:{self.port}: connection lost")
                log_event(log, "ami_lost", level=logging.WARNING, host=f"{self.host}:{self.port}")
            attempt += 1
            await asyncio.sleep(backoff_s(attempt, first_s=0.5, cap_s=self._max_backoff, jitter=True))

    async def _connect_once(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        protocol: _Protocol | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, protocol = await loop.create_connection(lambda: _Protocol(self), self.host, self.port)
                pending = protocol.send_action(
                    "Login", [("Username", self.user), ("Secret", self.__password), ("Events", self._event_classes)],
                    None)
                try:
                    answer = await pending.future
                finally:
                    protocol.forget(pending)
        except TimeoutError:
            if protocol is not None:
                protocol.close()
            raise AmiUnavailable(f"AMI {self.host}:{self.port}: no login within {self._connect_timeout:g}s") \
                from None
        except OSError as exc:
            raise AmiUnavailable(f"AMI {self.host}:{self.port}: {type(exc).__name__}: {exc.strerror or exc}") \
                from None
        except BaseException:
            if protocol is not None:
                protocol.close()
            raise
        if answer.response != "Success":
            protocol.close()
            raise AmiLoginRefused(f"AMI {self.host}:{self.port} refused the login of {self.user!r}: {answer.message}")
        return protocol

    async def _keep_alive(self, protocol: _Protocol) -> None:
        """Return when the connection is lost; a Ping unanswered within the action budget counts as lost
        (a peer that stopped answering without closing would otherwise hold every action)."""
        while not protocol.lost.is_set():
            try:
                async with asyncio.timeout(self._keepalive):
                    await protocol.lost.wait()
            except TimeoutError:
                try:
                    await self._request(protocol, "Ping", {}, None, self._action_timeout)
                except AmiError:
                    return
