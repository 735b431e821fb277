"""Prompts are jinja2 templates that render to a sequence of media.

Inside a template, `{{ sound('welcome') }}` is a recorded prompt in the caller's language,
`{{ digits('95001') }}` says digits one by one, `{{ number(12) }}`, `{{ amount(balance) }}`
(yuan) and `{{ date(due) }}` are composed from recorded words, `{{ notice(n) }}` plays a service
notice, and plain text is generated speech (e.g. the caller's name). Helpers emit markers into the
rendered text so the media keep the template's order; the text between markers becomes speech.
Each render tags its markers with a fresh random token, so no value interpolated into a template
(a name, a notice, anything a caller supplied) can forge one: such a value is only ever speech of
its own text, with control characters spoken as spaces.

Rendering is sandboxed and strict: an unknown variable is an error, caught by `menus validate`,
and at run time the caller hears a safe fallback instead of silence. Secure input is never
spoken: templates see it as a `MaskedValue` whose attributes the sandbox refuses, and a template
that would output it fails.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import unicodedata
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agi_app.flows import saying
from agi_app.media.items import MediaItem, Sound, Speech
from agi_app.secure import is_secure

_MARK = "\x1e"
_SOUND_ID = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")
# Characters that are not text to speak: controls (NUL, newline, the marker byte), format
# characters, separators of lines and paragraphs, unassigned and private code points.
_NOT_SPOKEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class PromptError(Exception):
    """A prompt template failed to compile or render."""


class _Markers:
    """The marker syntax of one render: `<tag>kind:value<tag>`, the tag unguessable."""

    def __init__(self) -> None:
        self.tag = f"{_MARK}{secrets.token_hex(8)}"

    def __call__(self, kind: str, value: str) -> str:
        return f"{self.tag}{kind}:{value}{self.tag}"

    def sounds(self, ids: list[str]) -> str:
        return "".join(self("sound", i) for i in ids)


def _to_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _to_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _notice(mark: _Markers, item: Mapping[str, Any], language: str) -> str:
    """A service notice: its recorded sound if it has one, else its text, in the text's own voice."""
    if item.get("sound"):
        return mark("sound", str(item["sound"]))
    text = " ".join(str(item.get("text") or "").split())
    return mark("speech", f"{item.get('language') or language}|{text}") if text else ""


def helpers(language: str, mark: _Markers) -> dict[str, Any]:
    """The template functions, bound to the caller's language and this render's markers."""
    return {
        "sound": lambda sound_id: mark("sound", str(sound_id)),
        "digits": lambda value, phone=False: mark.sounds(saying.say_digits(str(value), language, phone=phone)),
        "number": lambda value: mark.sounds(saying.say_number(int(value), language)),
        "amount": lambda value: mark.sounds(saying.say_amount(_to_decimal(value), language)),
        "date": lambda value, with_year=False: mark.sounds(saying.say_date(_to_date(value), language,
                                                                           with_year=with_year)),
        "notice": lambda item: _notice(mark, item, language),
    }


class _PromptEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, refusing every attribute of a secure value (`reveal`, `masked`, anything)."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return not is_secure(obj) and super().is_safe_attribute(obj, attr, value)


def _never_secure(value: Any) -> Any:
    """Applied to every `{{ }}` output: secure input is never spoken, not even masked."""
    if is_secure(value):
        raise SecurityError("a secure value cannot be spoken")
    return value


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    return _PromptEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, finalize=_never_secure)


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
    mark = _Markers()
    try:
        text = template.render({**context, **helpers(language, mark), "lang": language})
    except jinja2.TemplateError as exc:
        raise PromptError(f"template error: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - errors inside template expressions
        raise PromptError(f"template error: {type(exc).__name__}: {exc}") from exc
    items: list[MediaItem] = []
    for index, part in enumerate(text.split(mark.tag)):
        if index % 2:
            kind, _, value = part.partition(":")
            if kind == "sound":
                if not _SOUND_ID.fullmatch(value):
                    raise PromptError(f"not a recorded sound id: {value!r}")
                items.append(Sound(value, language))
            elif kind == "speech":
                speech_language, _, said = value.partition("|")
                if spoken := _spoken(said):
                    items.append(Speech(spoken, speech_language))
        elif spoken := _spoken(part):
            items.append(Speech(spoken, language))
    return items


def _spoken(text: str) -> str:
    """Text as speech: characters that are not text become spaces, runs of space one space."""
    return " ".join("".join(" " if unicodedata.category(c) in _NOT_SPOKEN else c for c in text).split())
