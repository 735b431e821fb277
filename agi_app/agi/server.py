"""The FastAGI server `hotline serve` runs on HOTLINE_AGI_LISTEN: it reads a request, runs the
hook it names and answers with `SET VARIABLE` commands; any failure becomes
`SET VARIABLE HOTLINE_AGI_ERROR <reason>` and a log line, and the dialplan goes on to its safe
defaults.

It is panoramisk's FastAGI `Application` (route table, `Request.send_command`, its reply parser)
with the connection handler replaced: panoramisk's waits without limit for the blank line that
ends a request, spins on a connection closed before it, and bounds neither size nor time. Here
the request has a size limit and a budget, every command's reply has a budget, the number of
requests served at once is bounded (more are refused at once), every connection's task is ours
and cancelled on close, and no request can crash the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from typing import Any, Protocol

from panoramisk.fast_agi import Application, Request

from agi_app.agi.hooks import Hook
from agi_app.agi.request import MAX_REQUEST_BYTES, AgiRequest, AgiRequestError, parse_request, read_block
from agi_app.config import Settings, host_port
from agi_app.logs import log_event

log = logging.getLogger("hotline.agi")

#: What we ever write into a channel variable: a name of ours and a short token (no spaces,
#: quotes or backslashes, which Asterisk's argument parser would interpret).
_VARIABLE = re.compile(r"HOTLINE_[A-Z_]{1,40}")
_VALUE = re.compile(r"[A-Za-z0-9_.-]{0,64}")

ERROR_VARIABLE = "HOTLINE_AGI_ERROR"

#: Seconds between two attempts to bind an address in use.
RETRY_S = 2.0


class HookSet(Protocol):
    """The hooks by script name, and what to close with the server (`hooks.AgiHooks`)."""

    def routes(self) -> Mapping[str, Hook]: ...

    async def close(self) -> None: ...


class AgiAborted(Exception):
    """The conversation with Asterisk ended early (hang-up, timeout, closed connection)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AgiServer(Application):
    """The hooks, served over FastAGI within budgets."""

    def __init__(self, hooks: HookSet, *, listen: str, request_budget_s: float,
                 command_budget_s: float, max_requests: int) -> None:
        super().__init__(default_encoding="utf-8")
        self.hooks = hooks
        for name, hook in hooks.routes().items():
            self.add_route(name, hook)
        self.host, self.port = host_port("agi_listen", listen)
        self.request_budget_s = request_budget_s
        self.command_budget_s = command_budget_s
        self.max_requests = max_requests
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self.listening = asyncio.Event()

    @classmethod
    def from_settings(cls, hooks: HookSet, settings: Settings) -> AgiServer:
        return cls(hooks, listen=settings.agi_listen, request_budget_s=settings.agi_request_s,
                   command_budget_s=settings.agi_command_s, max_requests=settings.agi_max_requests)

    def __hash__(self) -> int:  # a server, not a mapping (panoramisk's Application is a dict)
        return id(self)

    def __eq__(self, other: object) -> bool:
        return other is self

    async def start(self) -> None:
        """Listen; OSError when the address cannot be bound (in use, not ours)."""
        self._server = await asyncio.start_server(self.handler, self.host, self.port, limit=MAX_REQUEST_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        self.listening.set()
        log_event(log, "agi_listening", host=self.host, port=self.port, hooks=",".join(self._route))

    async def keep_trying(self, retry_s: float = RETRY_S) -> None:
        """Listen as soon as the address can be bound: a server still draining calls may hold it
        during a restart. Calls are served meanwhile; the dialplan takes its defaults."""
        told = False
        while not self.listening.is_set():
            try:
                await self.start()
            except OSError as exc:
                if not told:
                    log_event(log, "agi_unavailable", level=logging.ERROR, host=self.host, port=self.port,
                              error=str(exc)[:200], retry_s=retry_s, dialplan_gets="defaults")
                    told = True
                await asyncio.sleep(retry_s)

    async def close(self) -> None:
        """Stop listening, end the requests in progress (their dialplan takes the defaults)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections))
        if self._server is not None:
            await self._server.wait_closed()
        await self.hooks.close()

    @property
    def active(self) -> int:
        return len(self._connections)

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One FastAGI connection (replaces panoramisk's: see the module's docstring)."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        loop = asyncio.get_running_loop()
        started = loop.time()
        request: AgiRequest | None = None
        try:
            if len(self._connections) > self.max_requests:
                raise AgiRequestError("busy", f"{self.max_requests} requests in progress")
            block = await read_block(reader, budget_s=self.request_budget_s)
            request = parse_request(block)
            hook = self._route.get(request.script)
            if hook is None:
                raise AgiRequestError("unknown_script", "no such hook")
            variables = await hook(request)
            unsafe = [name for name, value in variables.items()
                      if not _VARIABLE.fullmatch(name) or not _VALUE.fullmatch(value)]
            if unsafe:  # checked before any is set: the dialplan gets all of a decision or none
                raise AgiRequestError("unsafe_value", f"{', '.join(unsafe)} would not be a plain token")
            agi = Request(self, request.env, reader, writer, self.default_encoding)
            for name, value in variables.items():
                await self._command(agi, f'SET VARIABLE {name} "{value}"')
            decided: dict[str, object] = {name.removeprefix("HOTLINE_").lower(): value or "-"
                                          for name, value in variables.items()}
            log_event(log, "agi_request", level=logging.INFO, call=request.call_id, hook=request.script,
                      ms=round((loop.time() - started) * 1000), **decided)
        except AgiRequestError as exc:
            log_event(log, "agi_refused", level=logging.WARNING, call=request.call_id if request else None,
                      hook=request.script if request else None, reason=exc.reason, detail=exc.detail or None,
                      peer=_peer(writer))
            await self._tell(reader, writer, exc.reason, request)
        except AgiAborted as exc:
            log_event(log, "agi_aborted", level=logging.WARNING, call=request.call_id if request else None,
                      hook=request.script if request else None, reason=exc.reason)
        except Exception as exc:  # noqa: BLE001 - one request's bug must not stop the server
            log_event(log, "agi_failed", level=logging.ERROR, call=request.call_id if request else None,
                      hook=request.script if request else None, error=type(exc).__name__, detail=str(exc)[:200])
            await self._tell(reader, writer, "internal_error", request)
        finally:
            self._connections.discard(task)
            writer.close()

    async def _command(self, agi: Request, command: str) -> None:
        """One command and its reply, within the command budget."""
        try:
            async with asyncio.timeout(self.command_budget_s):
                result: dict[str, Any] = await agi.send_command(command)
        except TimeoutError as exc:
            raise AgiAborted("command_timeout") from exc
        except (OSError, ValueError, UnicodeDecodeError) as exc:  # ValueError: panoramisk parsing EOF's empty line
            raise AgiAborted("asterisk_gone") from exc
        if result.get("error") == "AGIResultHangup":
            raise AgiAborted("caller_hung_up")
        if result.get("status_code") != 200 or "error" in result:
            raise AgiAborted(f"command_refused_{result.get('status_code')}")

    async def _tell(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reason: str,
                    request: AgiRequest | None) -> None:
        """Best effort: HOTLINE_AGI_ERROR for the dialplan. Its reply is read when the request was
        read whole; else (busy, too large, too slow) the command is followed by our end of the
        stream and what the peer still sends is read and dropped until it closes: closing on unread
        bytes resets the connection, and a reset throws our command away before Asterisk reads it."""
        command = f'SET VARIABLE {ERROR_VARIABLE} "{reason}"'
        try:
            if request is not None:
                await self._command(Request(self, request.env, reader, writer, self.default_encoding), command)
            else:
                writer.write(command.encode() + b"\n")
                writer.write_eof()
                async with asyncio.timeout(self.command_budget_s):
                    await writer.drain()
        except (AgiAborted, OSError, TimeoutError) as exc:
            log_event(log, "agi_error_not_told", call=request.call_id if request else None, reason=reason,
                      error=exc.reason if isinstance(exc, AgiAborted) else type(exc).__name__)
            return
        if request is None:
            with contextlib.suppress(OSError, TimeoutError, ValueError):  # ValueError: a line over the limit
                async with asyncio.timeout(self.command_budget_s):
                    while await reader.read(4096):
                        pass


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "-"
