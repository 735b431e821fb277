"""Complaint tickets and their dispatches in PostgreSQL (migration 007): the `ComplaintStore` the
flow's `complaint` service files through, and what `hotline complaints` reads and changes.

Status changes follow `centre.complaints.TRANSITIONS`, checked under the ticket's row lock in the
same transaction as the change and its audit row. Resolving books the caller's callback in
`callbacks` (the contact centre's machinery dials it); its result comes back onto the ticket by
migration 007's trigger.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from agi_app.centre.complaints import (
    CALLBACK_GROUP,
    NO_NUMBER,
    ComplaintRefused,
    NewComplaint,
    Status,
    check_transition,
    dialable,
    valid_department,
)
from agi_app.db.repositories import audit, contact_centre

#: Who dispatches a ticket filed by a call: the hotline itself.
FILED_BY = "hotline"

_SELECT = """
SELECT ticket_id, call_id, customer_id, callback_number, category, department, status, created_at, recording,
       resolved_at, resolved_by, resolution, callback_id, callback_result
FROM complaints
"""
_LIST = _SELECT + "WHERE ($1::text IS NULL OR status = $1) ORDER BY created_at DESC, ticket_id DESC LIMIT $2"
_ONE = _SELECT + "WHERE ticket_id = $1"


class PgComplaints:
    """`ComplaintStore` over a pool (taken when used: the server's pool may be replaced)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    async def file(self, complaint: NewComplaint) -> str:
        async with self._pool().acquire() as conn:
            return await file(conn, complaint)


async def file(conn: asyncpg.Connection, complaint: NewComplaint) -> str:
    """Insert the ticket and dispatch it to its department (status `dispatched`); its ticket id."""
    async with conn.transaction():
        ticket_id: str = await conn.fetchval(
            "INSERT INTO complaints (call_id, customer_id, callback_number, category, department, recording)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING ticket_id",
            complaint.call_id, complaint.customer_id, complaint.callback_number, complaint.category,
            complaint.department, complaint.recording)
        await _dispatch(conn, ticket_id, "open", complaint.department, FILED_BY, "filed by the caller")
    return ticket_id


async def _dispatch(conn: asyncpg.Connection, ticket_id: str, current: str, department: str, actor: str,
                    note: str) -> None:
    check_transition(current, "dispatched")
    await conn.execute("INSERT INTO complaint_dispatches (ticket_id, department, dispatched_by, note)"
                       " VALUES ($1, $2, $3, $4)", ticket_id, department, actor, note)
    await conn.execute("UPDATE complaints SET status = 'dispatched' WHERE ticket_id = $1", ticket_id)


def _ticket(row: asyncpg.Record) -> dict[str, Any]:
    ticket = dict(row)
    for stamp in ("created_at", "resolved_at"):
        ticket[stamp] = ticket[stamp].isoformat() if ticket[stamp] else None
    return ticket


async def list_tickets(conn: asyncpg.Connection, *, status: Status | None = None,
                       limit: int = 100) -> list[dict[str, Any]]:
    """Newest first; the recording as stored (its name), for the CLI to turn into a path."""
    rows = await conn.fetch(_LIST, status, limit)
    return [_ticket(r) for r in rows]


async def get_ticket(conn: asyncpg.Connection, ticket_id: str) -> dict[str, Any] | None:
    """One ticket with its dispatch history (oldest first), or None."""
    row = await conn.fetchrow(_ONE, ticket_id)
    if row is None:
        return None
    ticket = _ticket(row)
    dispatches = await conn.fetch("SELECT department, dispatched_at, dispatched_by, note FROM complaint_dispatches"
                                  " WHERE ticket_id = $1 ORDER BY dispatched_at, id", ticket_id)
    ticket["dispatches"] = [{**dict(d), "dispatched_at": d["dispatched_at"].isoformat()} for d in dispatches]
    return ticket


async def pass_on(conn: asyncpg.Connection, ticket_id: str, *, department: str, note: str,
                  actor: str) -> dict[str, Any]:
    """Dispatch the ticket to another department, which answers for it from now on; audited, one
    transaction; the ticket as it now is."""
    if not valid_department(department):
        raise ComplaintRefused(f"department {department!r} is not a department name (a-z, 0-9, _)")
    async with conn.transaction():
        status = await conn.fetchval("SELECT status FROM complaints WHERE ticket_id = $1 FOR UPDATE", ticket_id)
        if status is None:
            raise ComplaintRefused(f"no complaint {ticket_id!r}")
        await _dispatch(conn, ticket_id, status, department, actor, note)
        await conn.execute("UPDATE complaints SET department = $2 WHERE ticket_id = $1", ticket_id, department)
        await audit.record(conn, actor, "complaints.dispatch",
                           {"ticket_id": ticket_id, "department": department, "note": note})
    return await _current(conn, ticket_id)


async def _current(conn: asyncpg.Connection, ticket_id: str) -> dict[str, Any]:
    ticket = await get_ticket(conn, ticket_id)
    if ticket is None:  # tickets are never deleted: only a broken database gets here
        raise ComplaintRefused(f"complaint {ticket_id!r} vanished after it was changed")
    return ticket


async def resolve(conn: asyncpg.Connection, ticket_id: str, *, note: str, actor: str,
                  callback_group: str = CALLBACK_GROUP) -> dict[str, Any]:
    """Mark the ticket resolved with the administrator's note and book the caller's callback (the
    callback machinery dials it; migration 007's trigger writes its result on the ticket), audited,
    all in one transaction; the ticket as it now is. A ticket without a dialable number is resolved
    with callback_result `no_number`."""
    async with conn.transaction():
        row = await conn.fetchrow("SELECT status, call_id, customer_id, callback_number FROM complaints"
                                  " WHERE ticket_id = $1 FOR UPDATE", ticket_id)
        if row is None:
            raise ComplaintRefused(f"no complaint {ticket_id!r}")
        check_transition(row["status"], "resolved")
        number = dialable(row["callback_number"])
        callback_id = await contact_centre.book_callback(
            conn, call_id=row["call_id"], customer_id=row["customer_id"], number=number,
            queue=callback_group) if number else None
        await conn.execute("UPDATE complaints SET status = 'resolved', resolved_at = now(), resolved_by = $2,"
                           " resolution = $3, callback_id = $4, callback_result = $5 WHERE ticket_id = $1",
                           ticket_id, actor, note, callback_id, None if callback_id else NO_NUMBER)
        await audit.record(conn, actor, "complaints.resolve",
                           {"ticket_id": ticket_id, "note": note, "callback_id": callback_id})
    return await _current(conn, ticket_id)
