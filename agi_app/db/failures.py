"""What "the database failed" means to the code that waits on it: one list of the errors a down,
slow or refusing PostgreSQL raises (for the loops that log, wait and try again), and which of them
a later retry of the same write can get past."""

from __future__ import annotations

import asyncpg

#: A statement's failures that say nothing about the statement: the database is down, slow or
#: refusing. Background loops catch these, log once, and try again later.
DB_FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

# SQLSTATEs worth retrying: connection exceptions (08), insufficient resources (53: too many
# connections, disk full), admin/crash shutdown and "starting up" (57P0x), statement cancelled or
# timed out (57014), lock not available (55P03), serialization failure and deadlock (40001, 40P01).
_TRANSIENT_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "57014", "55P03", "40001", "40P01")


def is_transient(exc: BaseException) -> bool:
    """Whether trying the same write again later can succeed."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(exc, asyncpg.PostgresError) and isinstance(state, str) and state.startswith(_TRANSIENT_SQLSTATES)
