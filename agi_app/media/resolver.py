"""Media items → ARI media URIs: recorded sounds by name, generated speech through the cache.

Any speech failure (a tool, the budget, an unwritable or full disk, a bug) drops that item rather
than failing the call: the recorded rest of the prompt still plays (a greeting without the name).
It is logged once, with the call id and never the text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from agi_app.logs import log_event
from agi_app.media.items import MediaItem, Sound, Speech
from agi_app.media.tts import SpeechError, SpeechSynthesizer
from agi_app.media.voice import load_prompt_texts

log = logging.getLogger("hotline.media")


def silent_sounds(prompts_file: Path) -> frozenset[tuple[str, str]]:
    """(language, id) pairs declared intentionally silent (`null`) in the prompt list."""
    if not prompts_file.is_file():
        return frozenset()
    return frozenset((lang, pid) for pid, texts in load_prompt_texts(prompts_file).items()
                     for lang, text in texts.items() if text is None)


class MediaResolver:
    def __init__(self, speech: SpeechSynthesizer | None, *, silent: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.speech = speech
        self.silent = silent

    async def uris(self, items: Sequence[MediaItem], *, call_id: str = "") -> list[str]:
        uris: list[str] = []
        for item in items:
            if isinstance(item, Sound):
                if (item.language, item.id) not in self.silent:
                    uris.append(item.uri)
            elif isinstance(item, Speech):
                if self.speech is None:
                    log_event(log, "speech_unavailable", level=logging.WARNING, call=call_id)
                    continue
                try:
                    uris.append(await self.speech.speak(item.text, item.language))
                except SpeechError as exc:  # its message names hashes and paths, never the text
                    log_event(log, "speech_failed", level=logging.WARNING, call=call_id, error=str(exc))
                except Exception as exc:  # noqa: BLE001 - a caller hears the recorded prompt, not the fallback
                    log_event(log, "speech_failed", level=logging.ERROR, call=call_id, error=type(exc).__name__)
        return uris
