"""Small engine parts on their own: the DTMF buffer, secure digits, configuration, log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
from pathlib import Path

import pytest

from agi_app.config import ConfigError, Settings
from agi_app.engine.dtmf import DtmfBuffer
from agi_app.logs import log_event
from agi_app.secure import SecretDigits


async def test_dtmf_buffer_keeps_order_and_bounds_floods() -> None:
    buf = DtmfBuffer(capacity=3)
    assert [buf.push(d) for d in "12x34"] == [True, True, False, True, False]
    assert buf.dropped == 2
    assert [await buf.pop(0.01) for _ in range(4)] == ["1", "2", "3", None]


async def test_dtmf_pop_waits_for_a_late_digit() -> None:
    buf = DtmfBuffer()
    asyncio.get_running_loop().call_later(0.05, buf.push, "#")
    assert await buf.pop(1.0) == "#"


def test_secret_digits_never_print() -> None:
    pin = SecretDigits("123456")
    for text in (str(pin), repr(pin), f"{pin}", "%s" % pin,  # noqa: UP031 - old-style formatting must mask too
                 json.dumps({"pin": str(pin)})):
        assert "123456" not in text
    assert pin.reveal() == "123456" and pin.masked == "******"
    with pytest.raises(TypeError):
        pickle.dumps(pin)


def test_settings_precedence(tmp_path: Path) -> None:
    env_file = tmp_path / "hotline.env"
    env_file.write_text("# sandbox\nHOTLINE_ARI_USER=fromfile\nHOTLINE_ARI_PASSWORD=secret\nHOTLINE_DSN=postgresql://f/x\n")
    s = Settings.load({"HOTLINE_ENV_FILE": str(env_file), "HOTLINE_DSN": "postgresql://env/x"}, ari_user="option")
    assert (s.ari_user, s.dsn, s.ari_password, s.ari_app) == ("option", "postgresql://env/x", "secret", "hotline")
    assert "secret" not in repr(s)
    with pytest.raises(ConfigError, match="HOTLINE_ARI_USER"):
        Settings.load({"HOTLINE_ENV_FILE": str(env_file), "HOTLINE_ARI_USER": ""}).require("ari_user")
    with pytest.raises(ConfigError, match="not a number"):
        Settings.load({"HOTLINE_ENV_FILE": str(env_file), "HOTLINE_LOOKUP_BUDGET_MS": "fast"})


def test_every_budget_and_limit_is_a_setting_and_each_millisecond_budget_reads_in_seconds(tmp_path: Path) -> None:
    (tmp_path / "empty.env").write_text("")
    s = Settings.load({"HOTLINE_ENV_FILE": str(tmp_path / "empty.env"), "HOTLINE_CALL_START_BUDGET_MS": "250",
                       "HOTLINE_RELOAD_BUDGET_MS": "4000", "HOTLINE_MAX_CALLS": "7",
                       "HOTLINE_FALLBACK_CONTEXT": "elsewhere"})
    assert (s.call_start_budget_s, s.reload_budget_s, s.lookup_budget_s) == (0.25, 4.0, 0.3)
    assert (s.max_calls, s.fallback_context, s.fallback_extension) == (7, "elsewhere", "s")
    for name in ("lookup", "call_start", "db", "ari", "fallback", "reload", "speech"):
        assert getattr(s, f"{name}_budget_s") == getattr(s, f"{name}_budget_ms") / 1000


def test_log_lines_are_greppable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log_event(logging.getLogger("t"), "node", call="17.1", node="main menu", skipped=None)
    assert caplog.records[0].message == 'event=node call=17.1 node="main menu"'
