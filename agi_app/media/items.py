"""What a caller can hear, as data: a recorded prompt or generated speech.

A leaf module: prompts render to these, the media resolver turns them into playable URIs, and
services return them, so none of those needs to import another to speak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SOUND_PREFIX = "hotline"


@dataclass(frozen=True)
class Sound:
    """A recorded prompt: `sounds/<language>/<id>.wav`, played as sound:hotline/<language>/<id>."""

    id: str
    language: str

    @property
    def uri(self) -> str:
        return f"sound:{SOUND_PREFIX}/{self.language}/{self.id}"


@dataclass(frozen=True)
class Speech:
    """Generated speech for dynamic text."""

    text: str
    language: str


MediaItem = Sound | Speech


def sound_path(sounds_dir: Path, sound: Sound) -> Path:
    return sounds_dir / sound.language / f"{sound.id}.wav"


def missing_sounds(items: Sequence[MediaItem], sounds_dir: Path) -> list[str]:
    return [f"{s.language}/{s.id}" for s in items if isinstance(s, Sound) and not sound_path(sounds_dir, s).is_file()]
