"""Emergency announcements and service notices: the verbs of `hotline emergency` and `hotline notices`.

Each change is written with its audit record in one transaction and takes effect for the next
caller (every call reads them at its start). Local times are read in the calendar zone of the line
concerned, like every local time an administrator types (agi_app/calendar/localtime.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from agi_app.admin import Refused
from agi_app.admin.calendar import load, local_time
from agi_app.db.repositories import audit, operations

NOTICE_KINDS: tuple[str, ...] = ("product", "fee", "branch", "hours", "other")


@dataclass(frozen=True)
class Texts:
    """What an announcement says: text per language and/or a recorded prompt."""

    zh: str | None
    en: str | None
    sound: str | None


def _is_chinese(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def texts(text: str | None, text_zh: str | None, text_en: str | None, sound: str | None,
          sounds: Path | None) -> Texts:
    """A language-neutral text goes to the language it is written in (a Chinese text read by the
    English voice is noise); a recorded prompt must exist under `sounds` (when known)."""
    zh = text_zh or (text if text and _is_chinese(text) else None)
    en = text_en or (text if text and not _is_chinese(text) else None)
    if not (zh or en or sound):
        raise Refused("an announcement needs a text or a recorded prompt")
    if sound and sounds is not None and not any((sounds / lang / f"{sound}.wav").is_file() for lang in ("zh", "en")):
        raise Refused(f"no recorded prompt {sound!r} under {sounds}")
    return Texts(zh, en, sound)


# -- emergency -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmergencyOn:
    id: int
    line: str | None
    until: datetime | None


async def emergency_on(conn: asyncpg.Connection, said: Texts, *, line: str | None, until: str | None,
                       actor: str) -> EmergencyOn:
    """Switch an announcement on for one line (None: all), replacing a live one of that scope;
    `until` is a local time as typed, read in that line's calendar zone."""
    end = await local_time(conn, until, line) if until else None
    if end is not None and end <= datetime.now(UTC):
        raise Refused(f"the end time {until!r} is in the past")
    async with conn.transaction():
        new_id = await operations.switch_on_emergency(conn, line=line, text_zh=said.zh, text_en=said.en,
                                                      sound=said.sound, until=end, actor=actor)
        await audit.record(conn, actor, "emergency.on", {"id": new_id, "line": line, "sound": said.sound,
                                                          "text_zh": said.zh, "text_en": said.en, "until": end})
    return EmergencyOn(new_id, line, end)


async def emergency_off(conn: asyncpg.Connection, *, line: str | None, all_lines: bool, actor: str) -> int:
    """End the live announcement of one line scope (or every one); returns how many ended."""
    async with conn.transaction():
        ended = await operations.switch_off_emergency(conn, line=line, all_lines=all_lines)
        await audit.record(conn, actor, "emergency.off", {"line": line, "all": all_lines, "ended": ended})
    return ended


async def emergencies(conn: asyncpg.Connection, *, history: bool) -> list[dict[str, Any]]:
    """Live announcements (with `history`, ended ones too), newest first."""
    return await operations.list_emergencies(conn, include_ended=history)


# -- notices ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NoticeAdded:
    id: int
    valid_from: date
    valid_to: date


async def add_notice(conn: asyncpg.Connection, said: Texts, *, kind: str, line: str | None, valid_from: date,
                     valid_to: date, priority: int, actor: str) -> NoticeAdded:
    """A notice inserted into the menus from `valid_from` to `valid_to` (dates, inclusive)."""
    if kind not in NOTICE_KINDS:
        raise Refused(f"kind {kind!r} is not one of {', '.join(NOTICE_KINDS)}")
    if valid_to < valid_from:
        raise Refused(f"the notice ends ({valid_to}) before it starts ({valid_from})")
    async with conn.transaction():
        new_id = await operations.add_notice(conn, kind=kind, line=line, text_zh=said.zh, text_en=said.en,
                                             sound=said.sound, valid_from=valid_from, valid_to=valid_to,
                                             priority=priority, actor=actor)
        await audit.record(conn, actor, "notices.add", {"id": new_id, "kind": kind, "line": line,
                                                         "from": valid_from, "to": valid_to})
    return NoticeAdded(new_id, valid_from, valid_to)


async def list_notices(conn: asyncpg.Connection, *, include_old: bool) -> list[dict[str, Any]]:
    """Current and future notices (with `include_old`, expired ones too). "Today" is today in the
    all-lines calendar zone, the clock callers live by, not the database session's."""
    today = datetime.now((await load(conn, None)).tz).date()
    return await operations.list_notices(conn, today=today, include_old=include_old)


async def remove_notice(conn: asyncpg.Connection, notice_id: int, *, actor: str) -> None:
    """Withdraw a notice; refused when there is no current notice of that id."""
    async with conn.transaction():
        if not await operations.remove_notice(conn, notice_id):
            raise Refused(f"no current notice {notice_id}")
        await audit.record(conn, actor, "notices.remove", {"id": notice_id})
