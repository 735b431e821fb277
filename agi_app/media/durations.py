"""How long media items play, from the real rendered audio: recorded prompts from their WAV
files, generated speech by synthesising it (through the same cache calls use)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from agi_app.media.items import MediaItem, Sound, Speech, sound_path
from agi_app.media.tts import SpeechSynthesizer
from agi_app.media.voice import wav_duration


@lru_cache(maxsize=4096)
def _recorded(path: Path) -> float:
    return wav_duration(path) if path.is_file() else 0.0  # silent-by-design ids have no file


class MediaDurations:
    def __init__(self, sounds_dir: Path, speech: SpeechSynthesizer | None) -> None:
        self.sounds_dir = sounds_dir
        self.speech = speech

    async def __call__(self, items: Sequence[MediaItem]) -> float:
        total = 0.0
        for item in items:
            if isinstance(item, Sound):
                total += _recorded(sound_path(self.sounds_dir, item))
            elif isinstance(item, Speech) and self.speech is not None:
                await self.speech.speak(item.text, item.language)
                total += wav_duration(self.speech.path_for(item.text, item.language))
        return total


async def no_durations(items: Sequence[MediaItem]) -> float:
    """For structure-only walks (depth checks in `menus validate`)."""
    return 0.0
