"""Calls and their journeys: read back (`hotline calls list`, reports), closed when a dead server left
them open, and written for calls only the dialplan ran."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from agi_app.centre.dialplan_journeys import DialplanJourney

_LIST = """
SELECT c.call_id, c.started_at, c.ended_at, c.caller, c.dnis, c.customer_id, c.segment, c.language,
       c.menu_version, c.outcome, c.transfer_target, c.duration_ms,
       COALESCE((SELECT array_agg(n.node_id ORDER BY n.seq) FROM call_nodes n WHERE n.call_id = c.call_id),
                '{}') AS path,
       COALESCE((SELECT json_agg(json_build_object('service', s.service, 'result', s.result) ORDER BY s.seq)
                 FROM call_services s WHERE s.call_id = c.call_id), '[]') AS services,
       COALESCE((SELECT json_agg(json_build_object('node', n.node_id, 'input', i.input, 'result', i.result)
                                 ORDER BY i.seq)
                 FROM call_inputs i JOIN call_nodes n ON n.call_id = i.call_id AND n.seq = i.node_seq
                 WHERE i.call_id = c.call_id), '[]') AS inputs,
       (SELECT json_build_object('group', q.queue, 'announced_position', q.announced_position,
                                 'announced_wait_s', q.announced_wait_s, 'wait_s', q.wait_s, 'agent', q.agent,
                                 'talk_s', q.talk_s, 'result', q.result)
        FROM queue_legs q WHERE q.call_id = c.call_id
        ORDER BY COALESCE(q.joined_at, q.ended_at) DESC NULLS FIRST, q.queue LIMIT 1) AS queue,
       COALESCE((SELECT json_agg(json_build_object('kind', a.kind, 'node', a.node_id, 'score', a.score,
                                                   'result', a.result, 'no_answer', a.no_answer,
                                                   'queue', a.queue, 'agent', a.agent) ORDER BY a.at)
                 FROM survey_answers a WHERE a.call_id = c.call_id), '[]') AS surveys
FROM calls c
WHERE ($1::text IS NULL OR c.caller = $1) AND ($2::text IS NULL OR c.call_id = $2)
ORDER BY c.started_at DESC
LIMIT $3
"""


async def list_calls(conn: asyncpg.Connection, *, limit: int = 50, caller: str | None = None,
                     call_id: str | None = None) -> list[dict[str, Any]]:
    """Newest first, one dict per call in the shape of `hotline calls list --json`. `queue` is the
    call's (latest) agent queue leg: the skill group, what the caller was told, how long they
    waited, who answered, how long they talked, and how it ended — or None. `survey` is the latest
    satisfaction score (1–5) or None, `surveys` each survey offered (`_surveys`)."""
    rows = await conn.fetch(_LIST, caller, call_id, limit)
    return [
        {
            "call_id": r["call_id"],
            "started_at": r["started_at"].isoformat(),
            "ended_at": r["ended_at"].isoformat() if r["ended_at"] else None,
            "caller": r["caller"],
            "dnis": r["dnis"],
            "customer_id": r["customer_id"],
            "segment": r["segment"],
            "language": r["language"],
            "menu_version": r["menu_version"],
            "path": list(r["path"]),
            "outcome": r["outcome"],
            "transfer_target": r["transfer_target"],
            "duration_ms": r["duration_ms"],
            "services": json.loads(r["services"]),
            "inputs": json.loads(r["inputs"]),
            "queue": json.loads(r["queue"]) if r["queue"] else None,
            **_surveys(json.loads(r["surveys"])),
        }
        for r in rows
    ]


def _surveys(surveys: list[dict[str, Any]]) -> dict[str, Any]:
    """`surveys`: every survey the call was offered (after self-service, after its agent), oldest
    first, answered or not; `survey`: the latest score given, or None."""
    return {"survey": next((a["score"] for a in reversed(surveys) if a["score"] is not None), None),
            "surveys": surveys}


# A journey left open by a server that died (SIGKILL, a crash, the machine) ends where its trace
# ends: at the last thing recorded of it. Its outcome is `error`: the call lost its application.
_CLOSE_ORPHANS = """
WITH orphan AS (
    SELECT c.call_id, GREATEST(c.started_at,
                               (SELECT max(n.entered_at) FROM call_nodes n WHERE n.call_id = c.call_id),
                               (SELECT max(i.at) FROM call_inputs i WHERE i.call_id = c.call_id),
                               (SELECT max(s.at) FROM call_services s WHERE s.call_id = c.call_id)) AS last_seen
    FROM calls c
    WHERE c.asterisk = $1 AND c.ended_at IS NULL AND c.started_at < $2
)
UPDATE calls c SET ended_at = o.last_seen, outcome = 'error',
                   duration_ms = round(extract(epoch FROM o.last_seen - c.started_at) * 1000)::integer
FROM orphan o
WHERE c.call_id = o.call_id AND c.ended_at IS NULL
RETURNING c.call_id
"""


async def close_orphans(conn: asyncpg.Connection | asyncpg.Pool, asterisk: str, before: datetime) -> list[str]:
    """Close the journeys still open on `asterisk` that started before `before` (this server's
    start: none of them is its own); the call ids closed. A journey its writer finishes later
    (a replayed spill file) takes its real end over this one."""
    return [row["call_id"] for row in await conn.fetch(_CLOSE_ORPHANS, asterisk, before)]


_INSERT_DIALPLAN_CALL = """
INSERT INTO calls (call_id, started_at, ended_at, caller, dnis, customer_id, segment, language, outcome,
                   transfer_target, duration_ms, asterisk)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (call_id) DO NOTHING
"""
# The queue tracker (AMI) writes the leg while `hotline serve` runs, with the exact times: its leg wins.
_INSERT_DIALPLAN_LEG = """
INSERT INTO queue_legs (call_id, queue, joined_at, answered_at, ended_at, wait_s, agent, talk_s, result)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (call_id, queue) DO NOTHING
"""


async def insert_dialplan_journeys(conn: asyncpg.Connection, journeys: list[DialplanJourney],
                                   asterisk: str | None) -> int:
    """Write the journeys of calls only the dialplan ran (one transaction); a call already there —
    the same line imported twice — is left as it is. How many calls were new."""
    new = 0
    async with conn.transaction():
        for j in journeys:
            status = await conn.execute(_INSERT_DIALPLAN_CALL, j.call_id, j.started_at, j.ended_at, j.caller, j.line,
                                        j.customer_id, j.segment, j.language, j.outcome, j.transfer_target,
                                        j.duration_ms, asterisk)
            new += status == "INSERT 0 1"
            if (leg := j.leg) is not None:
                await conn.execute(_INSERT_DIALPLAN_LEG, j.call_id, leg.group, leg.joined_at, leg.answered_at,
                                   leg.ended_at, leg.wait_s, leg.agent, leg.talk_s, leg.result)
    return new
