"""One log line per event, `key=value` style, so a telephony engineer can grep a call id.

Every line starts with `event=<name>`; call-scoped lines carry `call=<channel id>`.
Values with spaces are quoted. Never pass secure input here: `SecretDigits` masks itself anyway.
"""

from __future__ import annotations

import logging
import sys


def _fmt(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: object) -> None:
    """Emit `event=<event> k=v ...` (fields whose value is None are left out)."""
    if not logger.isEnabledFor(level):
        return
    parts = [f"event={event}"] + [f"{k}={_fmt(v)}" for k, v in fields.items() if v is not None]
    logger.log(level, " ".join(parts))


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
