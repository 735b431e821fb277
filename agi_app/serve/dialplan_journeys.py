"""Importing the journeys the dialplan wrote for calls no application ran (`centre.dialplan_journeys`).

Asterisk appends a line to `journeys/current.tsv` in its spool folder when such a call ends,
opening and closing the file for each line. To take the lines we rename the file to
`importing-<ns>.tsv` (the next call's line starts a new `current.tsv`), wait a moment for a write
already under way on the old name, then write its journeys (transactions of 500) and delete it. A
file is deleted only once PostgreSQL took its journeys: while the database does not answer, the
files wait and are tried again, and ones left by a server that stopped are taken by the next. An
import is idempotent (a call already written is left as it is), so a file imported twice is
harmless. A line that is not a journey is logged (file, line number, reason — never its content)
and skipped; the rest of the file is imported. A file PostgreSQL refuses for good (not an outage)
is kept aside as `refused-<name>` for an administrator, and the files after it go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import asyncpg

from agi_app.budget import backoff_s
from agi_app.centre.dialplan_journeys import BadJourneyLine, DialplanJourney, parse_line
from agi_app.db.failures import DB_FAILURES, is_transient
from agi_app.db.repositories import calls
from agi_app.logs import log_event

log = logging.getLogger("hotline.journey")

CURRENT = "current.tsv"
_IMPORTING = "importing-{ns}.tsv"
_REFUSED = "refused-{name}"
#: Long enough for Asterisk to finish a line it started writing under the old name.
_WRITE_GRACE_S = 0.5
_CHUNK = 500  # journeys per transaction, each within the database budget


class DialplanJourneyImporter:
    def __init__(self, pool: asyncpg.Pool, folder: Path, *, asterisk: str | None, every_s: float,
                 budget_s: float) -> None:
        self.pool = pool
        self.folder = folder
        self.asterisk = asterisk
        self.every_s = every_s
        self.budget_s = budget_s

    async def run(self) -> None:
        """Import what is there every `every_s` until cancelled; retry with backoff while the
        database fails."""
        failures = 0
        while True:
            try:
                await self.import_now()
                failures = 0
                pause = self.every_s
            except DB_FAILURES as exc:
                failures += 1
                log_event(log, "dialplan_journeys_failed", level=logging.WARNING, error=type(exc).__name__,
                          attempt=failures)
                pause = backoff_s(failures, first_s=self.every_s, cap_s=max(self.every_s, 60.0))
            await asyncio.sleep(max(pause, 0.05))  # never a busy loop, whatever the setting

    async def import_now(self) -> int:
        """Take the current file and import every file waiting; how many new journeys."""
        waiting = await asyncio.to_thread(self._claim)
        if not waiting:
            return 0
        await asyncio.sleep(_WRITE_GRACE_S)
        new = 0
        for path in waiting:
            journeys = await asyncio.to_thread(self._read, path)
            new_here = 0
            try:
                for start in range(0, len(journeys), _CHUNK):
                    async with asyncio.timeout(self.budget_s), self.pool.acquire() as conn:
                        new_here += await calls.insert_dialplan_journeys(conn, journeys[start:start + _CHUNK],
                                                                         self.asterisk)
            except asyncpg.PostgresError as exc:
                if is_transient(exc):
                    raise
                # the database refuses these journeys for good: kept aside, the files after it go on
                await asyncio.to_thread(path.rename, path.with_name(_REFUSED.format(name=path.name)))
                log_event(log, "dialplan_journeys_refused", level=logging.ERROR, file=path.name,
                          error=type(exc).__name__, sqlstate=exc.sqlstate, kept_as=_REFUSED.format(name=path.name))
                continue
            log_event(log, "dialplan_journeys_imported", file=path.name, journeys=len(journeys), new=new_here)
            await asyncio.to_thread(path.unlink)
            new += new_here
        return new

    def _claim(self) -> list[Path]:
        """Rename the current file out of Asterisk's way; every file waiting, oldest first."""
        current = self.folder / CURRENT
        try:
            current.rename(self.folder / _IMPORTING.format(ns=time.time_ns()))
        except FileNotFoundError:
            pass
        return sorted(self.folder.glob(_IMPORTING.format(ns="*")))

    def _read(self, path: Path) -> list[DialplanJourney]:
        journeys = []
        with path.open(encoding="utf-8", errors="replace", newline="\n") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    if not line.endswith("\n"):
                        raise BadJourneyLine("unfinished line")
                    journeys.append(parse_line(line))
                except BadJourneyLine as exc:
                    log_event(log, "dialplan_journey_refused", level=logging.ERROR, file=path.name, line=number,
                              reason=str(exc))
        return journeys
