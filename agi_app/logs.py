"""One log line per event, `key=value` style, so a telephony engineer can grep a call id.

Every line starts with `event=<name>`; call-scoped lines carry `call=<channel id>`.
Values with spaces are quoted; newlines and other control characters are escaped (`\\n`, `\\x00`),
so a value — a caller number, a name — can never end the line or forge another. Never pass secure
input here: `SecretDigits` masks itself anyway.
"""

from __future__ import annotations

import logging
import sys
import unicodedata

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Control, format (e.g. bidi overrides) and line/paragraph separator characters: none may reach a
# log line raw, or a value could end the line, start a forged one, or hide text from the reader.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if unicodedata.category(char) in _HIDDEN:
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return char


def _plain(char: str) -> bool:
    return not char.isspace() and char not in _ESCAPES and char != "=" and unicodedata.category(char) not in _HIDDEN


def _fmt(value: object) -> str:
    """A value as one token: as is when plain, else quoted with `\\`, `"` and hidden characters escaped."""
    text = str(value)
    if text and all(_plain(c) for c in text):
        return text
    return '"' + "".join(_escape(c) for c in text) + '"'


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: object) -> None:
    """Emit `event=<event> k=v ...` (fields whose value is None are left out)."""
    if not logger.isEnabledFor(level):
        return
    parts = [f"event={_fmt(event)}"] + [f"{k}={_fmt(v)}" for k, v in fields.items() if v is not None]
    logger.log(level, " ".join(parts))


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
