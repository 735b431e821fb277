"""What administrators announce to callers: service notices and the emergency notice.

Domain facts, below the flows that speak them and the repositories that store them
(`db/repositories/operations.py`); the verbs that change them are in `admin/operations.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
