"""What administrators announce to callers: service notices and the emergency notice.

Domain facts, below the flows that speak them and the repositories that store them
(`db/repositories/operations.py`); the verbs that change them are in `admin/operations.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


def _pick(texts: Mapping[str, str | None], language: str) -> tuple[str, str] | None:
    """(text, its language): the caller's language if written, else any (spoken in its own voice)."""
    text = texts.get(language)
    if text:
        return text, language
    return next(((t, lang) for lang, t in texts.items() if t), None)


@dataclass(frozen=True)
class Notice:
    kind: str
    texts: Mapping[str, str | None]
    sound: str | None

    def for_language(self, language: str) -> dict[str, Any]:
        """What a prompt template sees of the notice (`{{ notice(n) }}`)."""
        text, text_language = _pick(self.texts, language) or (None, language)
        return {"kind": self.kind, "text": text, "language": text_language, "sound": self.sound}


@dataclass(frozen=True)
class Emergency:
    texts: Mapping[str, str | None]
    sound: str | None

    def text(self, language: str) -> tuple[str, str] | None:
        """(text, language to speak it in)."""
        return _pick(self.texts, language)


@dataclass(frozen=True)
class ScheduledEmergency:
    """A stored emergency not switched off: live on `line` (None: every line) from `starts_at`
    until `until` (None: until switched off)."""

    id: int
    line: str | None
    starts_at: datetime
    until: datetime | None
    emergency: Emergency


@dataclass(frozen=True)
class ScheduledNotice:
    """A stored notice not removed: valid on `line` (None: every line) from `valid_from` to
    `valid_to` (dates, inclusive); higher `priority` first."""

    id: int
    line: str | None
    valid_from: date
    valid_to: date
    priority: int
    notice: Notice


def live_emergency(scheduled: Iterable[ScheduledEmergency], line: str, at: datetime) -> Emergency | None:
    """The emergency a call on `line` at `at` hears: the line's own before an all-lines one, the
    newest first. One rule for the database read and the in-memory cache alike."""
    live = [s for s in scheduled
            if s.starts_at <= at and (s.until is None or s.until > at) and s.line in (None, line)]
    if not live:
        return None
    return min(live, key=lambda s: (s.line is None, -s.id)).emergency


def valid_notices(scheduled: Iterable[ScheduledNotice], line: str, day: date) -> list[Notice]:
    """The notices a call on `line` on `day` hears, highest priority first, then oldest."""
    valid = [s for s in scheduled if s.valid_from <= day <= s.valid_to and s.line in (None, line)]
    return [s.notice for s in sorted(valid, key=lambda s: (-s.priority, s.id))]
