"""Prompts are jinja2 templates that render to a sequence of media.

Inside a template, `{{ sound('welcome') }}` is a recorded prompt in the caller's language,
`{{ digits('95001') }}` says digits one by one, `{{ number(12) }}`, `{{ amount(balance) }}`
(yuan) and `{{ date(due) }}` are composed from recorded words, `{{ notice(n) }}` plays a service
notice, and plain text is generated speech (e.g. the caller's name). Helpers emit markers into the rendered text so the media keep the template's
order; the text between markers becomes speech. Rendering is sandboxed and strict: an unknown
variable is an error, caught by `menus validate`, and at run time the caller hears a safe
fallback instead of silence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agi_app.flows import saying

_MARK = "\x1e"
SOUND_PREFIX = "hotline"


class PromptError(Exception):
    """A prompt template failed to compile or render."""


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


def _marker(kind: str, value: str) -> str:
    return f"{_MARK}{kind}:{value}{_MARK}"


def _sounds(ids: list[str]) -> str:
    return "".join(_marker("sound", i) for i in ids)


def _to_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _to_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _notice(item: Mapping[str, Any], language: str) -> str:
    """A service notice: its recorded sound if it has one, else its text, in the text's own voice."""
    if item.get("sound"):
        return _marker("sound", str(item["sound"]))
    text = " ".join(str(item.get("text") or "").split())
    return _marker("speech", f"{item.get('language') or language}|{text}") if text else ""


def helpers(language: str) -> dict[str, Any]:
    """The template functions, bound to the caller's language."""
    return {
        "sound": lambda sound_id: _marker("sound", str(sound_id)),
        "digits": lambda value, phone=False: _sounds(saying.say_digits(str(value), language, phone=phone)),
        "number": lambda value: _sounds(saying.say_number(int(value), language)),
        "amount": lambda value: _sounds(saying.say_amount(_to_decimal(value), language)),
        "date": lambda value, with_year=False: _sounds(saying.say_date(_to_date(value), language,
                                                                       with_year=with_year)),
        "notice": lambda item: _notice(item, language),
    }


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


@lru_cache(maxsize=4096)
def compile_template(source: str) -> jinja2.Template:
    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"template syntax error on line {exc.lineno}: {exc.message}") from exc


def pick(prompt: Mapping[str, str], language: str) -> str:
    """The template for `language` ("*" serves every language)."""
    if language in prompt:
        return prompt[language]
    if "*" in prompt:
        return prompt["*"]
    raise PromptError(f"no prompt for language {language!r}")


def render(prompt: Mapping[str, str], language: str, context: Mapping[str, Any]) -> list[MediaItem]:
    """Render one prompt to media items (raises PromptError on any template problem)."""
    template = compile_template(pick(prompt, language))
    try:
        text = template.render({**context, **helpers(language), "lang": language})
    except jinja2.TemplateError as exc:
        raise PromptError(f"template error: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - errors inside template expressions
        raise PromptError(f"template error: {type(exc).__name__}: {exc}") from exc
    items: list[MediaItem] = []
    for index, part in enumerate(text.split(_MARK)):
        if index % 2:
            kind, _, value = part.partition(":")
            if kind == "sound":
                items.append(Sound(value, language))
            elif kind == "speech":
                speech_language, _, text = value.partition("|")
                items.append(Speech(text, speech_language))
        elif part.strip():
            items.append(Speech(" ".join(part.split()), language))
    return items


def sound_path(sounds_dir: Path, sound: Sound) -> Path:
    return sounds_dir / sound.language / f"{sound.id}.wav"


def missing_sounds(items: Sequence[MediaItem], sounds_dir: Path) -> list[str]:
    return [f"{s.language}/{s.id}" for s in items if isinstance(s, Sound) and not sound_path(sounds_dir, s).is_file()]
