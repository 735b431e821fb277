"""What callers chose at each menu: the measured use `hotline menus adapt` orders options by."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from agi_app.analytics.kpi import UNKNOWN_SEGMENT

# A menu key the caller pressed (`option`: one of the menu's own options, not a universal key nor an
# invalid one), at the node it was pressed at (call_inputs.node_seq is the call_nodes seq).
_CHOICES = """
SELECT n.node_id, i.input AS key, count(*) AS times
FROM call_inputs i
JOIN call_nodes n ON n.call_id = i.call_id AND n.seq = i.node_seq
JOIN calls c ON c.call_id = i.call_id
WHERE i.result = 'option' AND c.started_at >= $1
  AND ($2::text IS NULL OR c.dnis = $2)
  AND COALESCE(c.segment, '""" + UNKNOWN_SEGMENT + """') = $3
GROUP BY n.node_id, i.input"""  # noqa: S608 - constant SQL only; values are parameters


async def menu_choices(conn: asyncpg.Connection, since: datetime, segment: str, *,
                       line: str | None = None) -> dict[str, dict[str, int]]:
    """node id → key → times chosen, by callers of `segment` (`unknown`: not identified) in calls
    that started since `since`, on `line` if given."""
    choices: dict[str, dict[str, int]] = {}
    for r in await conn.fetch(_CHOICES, since, line, segment):
        choices.setdefault(r["node_id"], {})[r["key"]] = r["times"]
    return choices
