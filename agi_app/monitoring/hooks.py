"""Latency observers, each on a hook its library already offers, so the adapters stay unaware of metrics:

- ARI requests: an aiohttp `TraceConfig` given to the ARI client's session;
- PostgreSQL statements: asyncpg's query logger, added to each pooled connection as it opens;
- the caller lookup: the directory's lookup function wrapped (the Directory keeps its own budget).

Labels are reduced to bounded sets here: an ARI path to its resource (never a channel id), a SQL
statement to its first keyword (never its text or arguments).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import aiohttp
import asyncpg

from agi_app.directory.models import Customer
from agi_app.directory.service import Lookup
from agi_app.monitoring.metrics import HotlineMetrics

#: ARI's REST resources (the first path segment after /ari/); anything else is labelled `other`.
ARI_RESOURCES = frozenset({"applications", "asterisk", "bridges", "channels", "deviceStates", "endpoints",
                           "events", "mailboxes", "playbacks", "recordings", "sounds"})
#: SQL statements by first keyword; anything else is labelled `other`.
SQL_STATEMENTS = frozenset({"select", "insert", "update", "delete", "with", "begin", "commit", "rollback",
                            "listen", "unlisten", "set", "reset", "close"})


def ari_resource(path: str) -> str:
    """`/ari/channels/<id>/play/<id>` → `channels`."""
    parts = path.strip("/").split("/")
    resource = parts[1] if len(parts) > 1 and parts[0] == "ari" else ""
    return resource if resource in ARI_RESOURCES else "other"


def sql_statement(query: str) -> str:
    """A statement's first keyword, lower case (`other` for anything unexpected)."""
    words = query.split(None, 1)
    keyword = words[0].lower() if words else ""
    return keyword if keyword in SQL_STATEMENTS else "other"


def played_on(path: str) -> str | None:
    """The channel of a play request (`/ari/channels/<id>/play[/<playback id>]`), else None."""
    parts = path.strip("/").split("/")
    if len(parts) in (4, 5) and parts[:2] == ["ari", "channels"] and parts[3] == "play":
        return parts[2]
    return None


def ari_trace(metrics: HotlineMetrics) -> aiohttp.TraceConfig:
    """Times every request of the session it is given to (`hotline_ari_request_seconds`), and tells the
    prompt clock when a play request was accepted (`hotline_prompt_latency_seconds`)."""
    trace = aiohttp.TraceConfig()

    async def started(_: aiohttp.ClientSession, ctx: SimpleNamespace, __: aiohttp.TraceRequestStartParams) -> None:
        ctx.started = time.monotonic()

    def observe(ctx: SimpleNamespace, method: str, url: object, status: str) -> None:
        started_at = getattr(ctx, "started", None)
        if started_at is not None:
            path = getattr(url, "path", "")
            metrics.ari_request_seconds.labels(method=method, resource=ari_resource(path), status=status).observe(
                time.monotonic() - started_at)

    async def ended(_: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
        observe(ctx, params.method, params.url, f"{params.response.status // 100}xx")
        if params.method == "POST" and params.response.status < 300 and (channel := played_on(params.url.path)):
            metrics.prompt_clock.prompt_started(channel)

    async def failed(_: aiohttp.ClientSession, ctx: SimpleNamespace,
                     params: aiohttp.TraceRequestExceptionParams) -> None:
        observe(ctx, params.method, params.url, "error")

    trace.on_request_start.append(started)
    trace.on_request_end.append(ended)
    trace.on_request_exception.append(failed)
    trace.freeze()
    return trace


def query_observer(metrics: HotlineMetrics) -> Callable[[asyncpg.Connection], Awaitable[None]]:
    """An asyncpg pool `init`: each new connection reports its statements' durations
    (`hotline_db_query_seconds`). The logger runs after each statement, off its path (call_soon)."""

    def logged(record: asyncpg.connection.LoggedQuery) -> None:
        metrics.db_query_seconds.labels(statement=sql_statement(record.query),
                                        result="ok" if record.exception is None else "error").observe(record.elapsed)

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(logged)

    return init


def timed_lookup(lookup: Lookup, metrics: HotlineMetrics) -> Lookup:
    """`lookup`, timed into `hotline_lookup_seconds` by result."""

    async def timed(phone: str) -> Customer | None:
        started, result = time.monotonic(), "error"
        try:
            customer = await lookup(phone)
            result = "found" if customer is not None else "unknown"
            return customer
        except asyncio.CancelledError:  # the directory's budget ran out, or the call ended
            result = "cancelled"
            raise
        finally:
            metrics.lookup_seconds.labels(result=result).observe(time.monotonic() - started)

    return timed
