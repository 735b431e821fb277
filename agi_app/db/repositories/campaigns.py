"""Outbound campaigns in PostgreSQL: campaigns, their targets and each attempt (parameterised SQL).

Administrators' changes are written with their audit record in one transaction. The dialler's
claim locks the campaign row with SKIP LOCKED (one server claims for a campaign at a time, so
the concurrency limit holds across servers) and its targets likewise; every later update names
the attempt it is about and the state it may leave, so an event seen twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from agi_app.centre.campaigns import (
    AttemptLeg,
    CampaignError,
    Hours,
    Result,
    State,
    after_attempt,
    check_approver,
    free_lines,
    move,
)
from agi_app.db.repositories import audit


@dataclass(frozen=True)
class NewCampaign:
    """What an administrator defines; a stored campaign (`CampaignRow`) is this and its state."""

    name: str
    department: str
    message_sound: str | None
    message_text: str | None
    language: str
    hours: Hours
    concurrency: int


@dataclass(frozen=True)
class CampaignRow(NewCampaign):
    campaign_id: int
    state: State
    created_by: str
    approved_by: str | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> CampaignRow:
        return cls(campaign_id=r["campaign_id"], name=r["name"], department=r["department"],
                   message_sound=r["message_sound"], message_text=r["message_text"], language=r["language"],
                   hours=Hours(r["hours_start"], r["hours_end"]), concurrency=r["concurrency"],
                   state=State(r["state"]), created_by=r["created_by"], approved_by=r["approved_by"])


@dataclass(frozen=True)
class Claimed:
    """An attempt the claimer must now dial."""

    campaign_id: int
    leg: AttemptLeg
    number: str


_COLUMNS = ("campaign_id, name, department, message_sound, message_text, language, hours_start, hours_end,"
            " concurrency, state, created_by, approved_by")


async def create(conn: asyncpg.Connection, spec: NewCampaign, targets: Sequence[tuple[str | None, str]],
                 actor: str) -> int:
    """A draft campaign with its targets (customer id or None, number), audited; its id.
    CampaignError if the name is taken or there is nobody to call."""
    if not targets:
        raise CampaignError("the customer list has no number to call")
    async with conn.transaction():
        if await conn.fetchval("SELECT 1 FROM campaigns WHERE name = $1", spec.name):
            raise CampaignError(f"a campaign named {spec.name!r} exists already")
        campaign_id = int(await conn.fetchval(
            "INSERT INTO campaigns (name, department, message_sound, message_text, language, hours_start, hours_end,"
            " concurrency, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING campaign_id",
            spec.name, spec.department, spec.message_sound, spec.message_text, spec.language, spec.hours.starts,
            spec.hours.ends, spec.concurrency, actor))
        await conn.executemany(
            "INSERT INTO campaign_targets (campaign_id, customer_id, number) VALUES ($1, $2, $3)"
            " ON CONFLICT (campaign_id, number) DO NOTHING",
            [(campaign_id, customer_id, number) for customer_id, number in targets])
        await audit.record(conn, actor, "campaigns.create", {
            "campaign": spec.name, "department": spec.department, "targets": len(targets), "hours": str(spec.hours),
            "concurrency": spec.concurrency, "message": "sound" if spec.message_sound else "text"})
    return campaign_id


async def get(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> CampaignRow | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM campaigns WHERE name = $1", name)  # noqa: S608 - constant
    return CampaignRow.from_record(row) if row else None


async def get_by_id(conn: asyncpg.Connection | asyncpg.Pool, campaign_id: int) -> CampaignRow | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM campaigns WHERE campaign_id = $1", campaign_id)  # noqa: S608
    return CampaignRow.from_record(row) if row else None


async def change_state(conn: asyncpg.Connection, name: str, verb: str, actor: str) -> CampaignRow:
    """approve / start / pause, by `actor`, audited; CampaignError when the rules refuse it
    (approval by the creator, a move the current state does not allow)."""
    async with conn.transaction():
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM campaigns WHERE name = $1 FOR UPDATE", name)  # noqa: S608
        if row is None:
            raise CampaignError(f"no campaign named {name!r}")
        campaign = CampaignRow.from_record(row)
        if verb == "approve":
            check_approver(campaign.created_by, actor)
        state = move(verb, campaign.state)
        await conn.execute(
            "UPDATE campaigns SET state = $2, updated_at = now(),"
            " approved_by = CASE WHEN $3 THEN $4 ELSE approved_by END,"
            " approved_at = CASE WHEN $3 THEN now() ELSE approved_at END WHERE campaign_id = $1",
            campaign.campaign_id, str(state), verb == "approve", actor)
        detail: dict[str, Any] = {"campaign": name, "from": str(campaign.state), "to": str(state)}
        if verb == "approve":
            detail["created_by"] = campaign.created_by
        await audit.record(conn, actor, f"campaigns.{verb}", detail)
    return CampaignRow(**{**campaign.__dict__, "state": state,
                          "approved_by": actor if verb == "approve" else campaign.approved_by})


async def segment_numbers(conn: asyncpg.Connection, segment: str) -> list[tuple[str | None, str]]:
    """Every number of every customer of `segment` (customer id, number), by customer."""
    rows = await conn.fetch("SELECT p.customer_id, p.phone FROM customer_phones p JOIN customers c USING (customer_id)"
                            " WHERE c.segment = $1 ORDER BY p.customer_id, p.phone", segment)
    return [(r["customer_id"], r["phone"]) for r in rows]


async def customer_numbers(conn: asyncpg.Connection, customer_ids: Sequence[str]) -> dict[str, str]:
    """Each listed customer's first number on file (customers without one are absent)."""
    rows = await conn.fetch("SELECT DISTINCT ON (customer_id) customer_id, phone FROM customer_phones"
                            " WHERE customer_id = ANY($1::text[]) ORDER BY customer_id, phone", list(customer_ids))
    return {r["customer_id"]: r["phone"] for r in rows}


async def running(conn: asyncpg.Connection | asyncpg.Pool) -> list[CampaignRow]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM campaigns WHERE state = 'running' ORDER BY campaign_id")  # noqa: S608
    return [CampaignRow.from_record(r) for r in rows]


async def claim(conn: asyncpg.Connection, campaign_id: int) -> list[Claimed]:
    """Start as many attempts as the campaign's free lines allow: due customers not done and not
    being called, oldest due first. Nothing when another server is claiming for the campaign or it
    is no longer running."""
    async with conn.transaction():
        campaign = await conn.fetchrow(
            "SELECT concurrency FROM campaigns WHERE campaign_id = $1 AND state = 'running' FOR UPDATE SKIP LOCKED",
            campaign_id)
        if campaign is None:
            return []
        live = await conn.fetchval("SELECT count(*) FROM campaign_attempts WHERE campaign_id = $1 AND ended_at IS NULL",
                                   campaign_id)
        free = free_lines(campaign["concurrency"], live)
        if not free:
            return []
        rows = await conn.fetch(
            "WITH due AS (SELECT target_id FROM campaign_targets t WHERE campaign_id = $1 AND NOT done"
            "  AND due_at <= now() AND NOT EXISTS (SELECT 1 FROM campaign_attempts a"
            "  WHERE a.target_id = t.target_id AND a.ended_at IS NULL)"
            "  ORDER BY due_at, target_id LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " UPDATE campaign_targets t SET attempts = t.attempts + 1 FROM due WHERE t.target_id = due.target_id"
            " RETURNING t.target_id, t.attempts, t.number", campaign_id, free)
        await conn.executemany("INSERT INTO campaign_attempts (target_id, attempt, campaign_id) VALUES ($1, $2, $3)",
                               [(r["target_id"], r["attempts"], campaign_id) for r in rows])
    return sorted((Claimed(campaign_id, AttemptLeg(r["target_id"], r["attempts"]), r["number"]) for r in rows),
                  key=lambda c: c.leg.target_id)


async def mark_answered(conn: asyncpg.Connection | asyncpg.Pool, leg: AttemptLeg) -> int | None:
    """The attempt was answered (once); its campaign id, or None if it was not dialling."""
    campaign_id: int | None = await conn.fetchval(
        "UPDATE campaign_attempts SET result = 'answered', answered_at = now()"
        " WHERE target_id = $1 AND attempt = $2 AND result = 'dialling' AND ended_at IS NULL RETURNING campaign_id",
        leg.target_id, leg.attempt)
    return campaign_id


async def end_attempt(conn: asyncpg.Connection, leg: AttemptLeg, unanswered: Result, retry_delay: timedelta, *,
                      detail: str) -> Result | None:
    """The attempt's channel is gone: its result is `answered` if it was, else `unanswered`; the
    customer is done or due again after `retry_delay`. The result; None if it had ended already."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT a.result, t.attempts FROM campaign_attempts a JOIN campaign_targets t USING (target_id)"
            " WHERE a.target_id = $1 AND a.attempt = $2 AND a.ended_at IS NULL FOR UPDATE OF a, t",
            leg.target_id, leg.attempt)
        if row is None:
            return None
        answered = row["result"] == Result.ANSWERED
        result, detail = (Result.ANSWERED, "answered, then hung up") if answered else (unanswered, detail)
        await conn.execute("UPDATE campaign_attempts SET result = $3, ended_at = now(), detail = $4"
                           " WHERE target_id = $1 AND attempt = $2", leg.target_id, leg.attempt, str(result), detail)
        after = after_attempt(row["attempts"], result, retry_delay)
        await conn.execute("UPDATE campaign_targets SET done = $2, due_at = now() + $3::interval WHERE target_id = $1",
                           leg.target_id, after.done, after.due_in)
    return result


async def finish_if_done(conn: asyncpg.Connection | asyncpg.Pool, campaign_id: int) -> bool:
    """A running campaign whose customers are all done and whose calls have all ended is finished."""
    result = await conn.execute(
        "UPDATE campaigns c SET state = 'finished', updated_at = now() WHERE campaign_id = $1 AND state = 'running'"
        " AND NOT EXISTS (SELECT 1 FROM campaign_targets t WHERE t.campaign_id = c.campaign_id AND NOT t.done)"
        " AND NOT EXISTS (SELECT 1 FROM campaign_attempts a WHERE a.campaign_id = c.campaign_id"
        "  AND a.ended_at IS NULL)", campaign_id)
    return result.endswith(" 1")


async def open_attempts(conn: asyncpg.Connection | asyncpg.Pool, older_than: timedelta) -> list[AttemptLeg]:
    """Attempts whose channel should still live, started before `older_than` ago (for reconciling)."""
    rows = await conn.fetch("SELECT target_id, attempt FROM campaign_attempts WHERE ended_at IS NULL"
                            " AND started_at < now() - $1::interval", older_than)
    return [AttemptLeg(r["target_id"], r["attempt"]) for r in rows]


async def summaries(conn: asyncpg.Connection, name: str | None = None) -> list[dict[str, Any]]:
    """Each campaign (or the one named) with its customers reached/pending and attempts by result."""
    rows = await conn.fetch(
        "SELECT c.campaign_id, c.name, c.department, c.state, c.language, c.hours_start, c.hours_end, c.concurrency,"
        " c.created_by, c.created_at, c.approved_by, c.approved_at,"
        " CASE WHEN c.message_sound IS NOT NULL THEN 'sound:' || c.message_sound ELSE 'text' END AS message,"
        " (SELECT count(*) FROM campaign_targets t WHERE t.campaign_id = c.campaign_id) AS customers,"
        " (SELECT count(*) FROM campaign_targets t WHERE t.campaign_id = c.campaign_id AND NOT t.done) AS pending"
        " FROM campaigns c WHERE $1::text IS NULL OR c.name = $1 ORDER BY c.campaign_id", name)
    counts: dict[int, dict[str, int]] = {}
    for r in await conn.fetch("SELECT campaign_id, result, count(*) AS n FROM campaign_attempts"
                              " WHERE $1::bigint[] @> ARRAY[campaign_id] GROUP BY campaign_id, result",
                              [r["campaign_id"] for r in rows]):
        counts.setdefault(r["campaign_id"], {})[r["result"]] = r["n"]
    return [{"name": r["name"], "department": r["department"], "state": r["state"], "message": r["message"],
             "language": r["language"], "hours": str(Hours(r["hours_start"], r["hours_end"])),
             "concurrency": r["concurrency"], "created_by": r["created_by"], "created_at": _iso(r["created_at"]),
             "approved_by": r["approved_by"], "approved_at": _iso(r["approved_at"]), "customers": r["customers"],
             "pending": r["pending"],
             "attempts": {str(result): counts.get(r["campaign_id"], {}).get(str(result), 0) for result in Result}}
            for r in rows]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
