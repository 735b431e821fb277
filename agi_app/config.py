"""Configuration: environment variables, an optional env file, and command-line overrides.

One place decides where every setting comes from, so the CLI, the server and the tests agree.
Precedence: command-line option > process environment > env file > built-in default.
The env file is `$HOTLINE_ENV_FILE`, else `.run/hotline.env` in the current directory (written
by `scripts/sandbox up`), which is how `.venv/bin/hotline` reaches the sandbox with no setup.
Credentials have no defaults in code: they come from the environment or that file. The DSN's
password is never shown (`redact_dsn`: reprs, errors, logs) and never taken from the command line:
it comes with HOTLINE_DSN, from HOTLINE_DB_PASSWORD_FILE, or from PGPASSWORD.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import quote, unquote


class ConfigError(Exception):
    """A required setting is missing or malformed."""


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a `KEY=VALUE` file (`#` comments, blank lines, optional matching quotes).

    Deliberately not a shell parser: the same file is read by the sandbox script, by Python and
    by humans, so it stays plain assignments with no expansion.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _env_file_values(environ: Mapping[str, str]) -> dict[str, str]:
    explicit = environ.get("HOTLINE_ENV_FILE")
    path = Path(explicit) if explicit else Path(".run/hotline.env")
    if not path.is_file():
        if explicit:
            raise ConfigError(f"HOTLINE_ENV_FILE={explicit} does not exist")
        return {}
    return read_env_file(path)


def _seconds(ms_field: str) -> property:
    """A read-only view of the millisecond setting `ms_field` in seconds."""
    return property(lambda self: getattr(self, ms_field) / 1000, doc=f"{ms_field} in seconds")


@dataclass(frozen=True)
class Settings:
    """Every runtime setting of the hotline, named after its environment variable."""

    dsn: str = ""
    # A file holding the DSN's password (e.g. a mounted secret), added to the DSN when loading.
    db_password_file: str = ""
    ari_url: str = "http://127.0.0.1:8088"
    ari_user: str = ""
    ari_password: str = field(default="", repr=False)
    ari_app: str = "hotline"
    ami_url: str = "tcp://127.0.0.1:5038"
    ami_user: str = ""
    ami_password: str = field(default="", repr=False)
    # HOST:PORT `hotline serve` listens on for the dialplan's FastAGI hooks (identify, route, status).
    agi_listen: str = "127.0.0.1:4573"
    # This server's name among the servers sharing the database (the live view's and alerts' rows):
    # empty is host:pid; a cluster node (scripts/cluster) is named after its node.
    server_id: str = ""
    # Where `hotline serve` answers Prometheus scrapes (GET /metrics); port 0 picks a free one.
    metrics_listen: str = "127.0.0.1:9464"
    # How often the server checks that PostgreSQL answers, for the metrics' connection state.
    metrics_probe_ms: int = 5000
    # The live view (`hotline monitor`, the wallboard at <metrics listen>/wallboard): each server
    # writes its snapshot to PostgreSQL this often, each write (and read) within its budget; a
    # server's row older than the stale age is ignored (that server is gone).
    live_publish_ms: int = 1000
    live_budget_ms: int = 500
    live_stale_ms: int = 5000
    sounds_root: str = ""
    # The recorded prompts: prompts.yaml and <language>/<id>.wav, the files Asterisk plays as
    # sound:hotline/<language>/<id>. Relative to the working directory, like state_dir: the default
    # is a checkout's sounds/; an installed server names its copy (never one beside the package).
    prompts_dir: str = "sounds"
    # What must survive a restart or an outage on this host: journeys not yet written to
    # PostgreSQL, the last valid menu version. Relative paths are resolved from the working directory.
    state_dir: str = ".run/state"
    # Where Asterisk writes ARI recordings (its /var/spool/asterisk/recording), as this host sees it:
    # `hotline complaints` prints a complaint's recording as a file here. Empty: as `recording:<name>`.
    recordings_dir: str = ""
    # Where the dialplan writes the journeys of calls no application ran (the fallback while we
    # were down, line 95002): its ${ASTSPOOLDIR}/journeys as this host sees it. Every
    # dialplan_journeys_every_ms, `hotline serve` imports what is there. Empty: not imported.
    dialplan_journeys_dir: str = ""
    dialplan_journeys_every_ms: int = 5000
    flows_file: str = ""
    # Time budgets (milliseconds; each also read as seconds, `lookup_budget_s`, ...: see below).
    # Who is calling: past it the caller is unknown, never kept waiting.
    lookup_budget_ms: int = 300
    # What else a call reads at its start (business calendar, live emergency, valid notices), each
    # on its own: past it the calendar is open, no emergency, no notices.
    call_start_budget_ms: int = 300
    db_budget_ms: int = 1000
    # The journey writer retries PostgreSQL this long before spilling pending journeys to
    # <state_dir>/journeys (replayed when it answers again); it spills as well when this many
    # writes wait in memory.
    journey_retry_s: float = 5.0
    journey_queue_max: int = 20_000
    ari_budget_ms: int = 3000
    # The event WebSocket's opening handshake (TCP connect + HTTP upgrade): aiohttp's default is 300 s.
    ari_handshake_ms: int = 5000
    # AMI: TCP connect + Login; one action (its whole event list); the longest pause between
    # reconnect attempts (the backoff doubles up to it).
    ami_connect_ms: int = 3000
    ami_action_ms: int = 2000
    ami_reconnect_max_ms: int = 30_000
    # Idle this long, the connection is checked with a Ping (answered within ami_action_ms, or lost).
    ami_keepalive_ms: int = 10_000
    # How long a call may take to reach the dialplan fallback, retrying with backoff; a channel
    # still not there is retried at the next resync.
    fallback_budget_ms: int = 10000
    # After secure input (a PIN), digits are discarded until the caller pauses this long, so what
    # was typed beyond the PIN never reaches the next prompt.
    secure_quiet_gap_ms: int = 700
    # Digits after secure input or a recording are discarded for at most this long, however fast they
    # keep coming (a caller who never pauses, or a backlog Asterisk is still delivering, paced): the
    # caller then hears the next prompt instead of silence.
    dtmf_discard_max_ms: int = 3000
    # The menu reloader's LISTEN connection and its read of the active version.
    reload_budget_ms: int = 5000
    # One speech synthesis (espeak-ng + sox) of a prompt's dynamic text.
    speech_budget_ms: int = 5000
    # One drawing of the menus by Graphviz (`dot -Tsvg`, `hotline menus graph`).
    graph_render_ms: int = 20_000
    # Alerts (agi_app/analytics/alerts.py): evaluated this often; error rate and lookup timeouts
    # over the window; each level's threshold (0 turns that level off).
    alert_eval_ms: int = 1000
    alert_window_ms: int = 300_000
    alert_error_rate_warning_pct: int = 10
    alert_error_rate_critical_pct: int = 25
    alert_min_calls: int = 10
    alert_consecutive_warning: int = 3
    alert_consecutive_critical: int = 5
    alert_lookup_timeouts_warning: int = 5
    alert_lookup_timeouts_critical: int = 20
    alert_backlog_warning: int = 100
    alert_backlog_critical: int = 1000
    # A playback without news this long: ask Asterisk whether it still plays (a lost event).
    playback_check_ms: int = 60_000
    # After a reconnect, how long a resync lets a StasisStart still on its way make its channel a
    # call before it sends the channel to the fallback.
    resync_settle_ms: int = 500
    # A caller's recording (a complaint) ends by itself at its maximum length; past that plus this,
    # with no RecordingFinished, we stop it ourselves (a lost event must not hold the call).
    recording_grace_ms: int = 5000
    # FastAGI: Asterisk's request (the agi_* block) must arrive within agi_request_ms, and each
    # command's answer within agi_command_ms; past them the request fails and the dialplan goes on
    # to its safe defaults. At most agi_max_requests are served at once; more are refused at once.
    agi_request_ms: int = 1000
    agi_command_ms: int = 1000
    agi_max_requests: int = 200
    shutdown_grace_s: float = 20.0
    # At a stop each background task (callbacks, alerts, the change listener, ...) gets task_stop_ms
    # to end once cancelled; one still running is named in the log and cancelled again, so a task
    # that lost its cancellation cannot hold `hotline serve` until a supervisor's SIGKILL.
    task_stop_ms: int = 5000
    # Before a queue transfer the caller hears their position and estimated wait: the live queue
    # state (AMI) and the handle-time history are each read within queue_advice_budget_ms, past it
    # the caller is transferred without an announcement. Above callback_offer_wait_s of estimated
    # wait (a menu destination's own `callback_offer_wait_s` wins) a callback is offered, and the
    # caller has callback_key_ms after the offer to press 1; booking it gets callback_book_budget_ms.
    queue_advice_budget_ms: int = 800
    callback_offer_wait_s: int = 120
    callback_key_ms: int = 5000
    callback_book_budget_ms: int = 3000
    # The estimate's handle time: the mean talk time of a group's last queue_handle_window completed
    # calls plus queue_wrapup_s (keep it equal to queues.conf wrapuptime); with no such history,
    # Asterisk's average talk time; with none either, queue_default_handle_s.
    queue_handle_window: int = 20
    queue_wrapup_s: int = 2
    queue_default_handle_s: int = 180
    # Limits: calls served at once (more go to the fallback), DTMF digits buffered per call.
    max_calls: int = 500
    dtmf_capacity: int = 32
    # The dialplan fallback (extensions.conf): where calls go that we cannot serve.
    fallback_context: str = "hotline-fallback"
    fallback_extension: str = "s"
    # Money services (yuan, exact to the fen, as text: money is never a float): a transfer above
    # this needs the second factor (a one-time code); transfers to payees stop at this per day.
    transfer_second_factor_above: str = "5000.00"
    transfer_daily_limit: str = "50000.00"
    log_level: str = "INFO"
    # Phone-banking security (agi_app/banking): wrong PINs in a row that lock phone banking for the
    # customer, and for how long; one-time codes' life and tries; the risk rules (banking/risk.py).
    pin_max_failures: int = 3
    pin_lockout_minutes: int = 30
    otp_ttl_s: int = 300
    otp_max_attempts: int = 3
    risk_window_hours: int = 24
    risk_max_pin_changes: int = 2
    risk_max_pin_failures: int = 5
    risk_new_payee_hours: int = 24
    risk_large_transfer: str = "10000.00"  # a Decimal as text
    # Callbacks (serve/callbacks.py): how a customer is dialled back ({number}: digits only, the
    # number on file), how long the placeholder may wait in the queue in the caller's place and
    # the customer's phone may ring, attempts and the delay between them, how often due ones are
    # looked for (a booking is placed at once).
    callback_dial: str = "PJSIP/{number}@customers"
    callback_queue_wait_s: int = 3600
    callback_ring_s: int = 30
    callback_max_attempts: int = 3
    callback_retry_delay_s: int = 300
    callback_poll_ms: int = 5000
    # Outbound campaigns (serve/campaigns.py) dial like callbacks (callback_dial, callback_ring_s):
    # how often running campaigns are looked at, and how long a customer not reached waits for
    # the next attempt.
    campaign_poll_ms: int = 5000
    campaign_retry_delay_s: int = 1800

    # Each `_ms` budget as seconds, the unit asyncio takes: the one place milliseconds are converted.
    lookup_budget_s = _seconds("lookup_budget_ms")
    call_start_budget_s = _seconds("call_start_budget_ms")
    db_budget_s = _seconds("db_budget_ms")
    ari_budget_s = _seconds("ari_budget_ms")
    ari_handshake_s = _seconds("ari_handshake_ms")
    ami_connect_s = _seconds("ami_connect_ms")
    ami_action_s = _seconds("ami_action_ms")
    ami_reconnect_max_s = _seconds("ami_reconnect_max_ms")
    ami_keepalive_s = _seconds("ami_keepalive_ms")
    fallback_budget_s = _seconds("fallback_budget_ms")
    secure_quiet_gap_s = _seconds("secure_quiet_gap_ms")
    dtmf_discard_max_s = _seconds("dtmf_discard_max_ms")
    reload_budget_s = _seconds("reload_budget_ms")
    speech_budget_s = _seconds("speech_budget_ms")
    graph_render_s = _seconds("graph_render_ms")
    alert_eval_s = _seconds("alert_eval_ms")
    alert_window_s = _seconds("alert_window_ms")
    playback_check_s = _seconds("playback_check_ms")
    resync_settle_s = _seconds("resync_settle_ms")
    queue_advice_budget_s = _seconds("queue_advice_budget_ms")
    callback_key_s = _seconds("callback_key_ms")
    callback_book_budget_s = _seconds("callback_book_budget_ms")
    callback_poll_s = _seconds("callback_poll_ms")
    campaign_poll_s = _seconds("campaign_poll_ms")
    metrics_probe_s = _seconds("metrics_probe_ms")
    live_publish_s = _seconds("live_publish_ms")
    live_budget_s = _seconds("live_budget_ms")
    live_stale_s = _seconds("live_stale_ms")
    agi_request_s = _seconds("agi_request_ms")
    agi_command_s = _seconds("agi_command_ms")
    recording_grace_s = _seconds("recording_grace_ms")
    task_stop_s = _seconds("task_stop_ms")
    dialplan_journeys_every_s = _seconds("dialplan_journeys_every_ms")

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from the env file, the environment, then non-None overrides."""
        env = dict(os.environ if environ is None else environ)
        merged = {**_env_file_values(env), **env}
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = merged.get(f"HOTLINE_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, raw, type(getattr(cls, f.name)))
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("db_password_file") and values.get("dsn"):
            values["dsn"] = _with_password_file(str(values["dsn"]), str(values["db_password_file"]))
        return cls(**values)  # type: ignore[arg-type]

    def with_overrides(self, **overrides: object) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]

    def __repr__(self) -> str:
        """The dataclass repr, with the DSN's password left out (the other passwords are never shown)."""
        shown = ", ".join(f"{f.name}={redact_dsn(self.dsn) if f.name == 'dsn' else getattr(self, f.name)!r}"
                          for f in fields(self) if f.repr)
        return f"Settings({shown})"

    def require(self, *names: str) -> None:
        """Fail with a message naming the variables to set."""
        missing = [f"HOTLINE_{n.upper()}" for n in names if not getattr(self, n)]
        if missing:
            raise ConfigError(
                "missing configuration: " + ", ".join(missing)
                + " (set them in the environment, or run `scripts/sandbox up` for the local sandbox)"
            )

    def prompts_folder(self) -> Path:
        """The recorded prompts folder, absolute; a ConfigError naming the setting if it has no prompt list.

        The one place that decides where recorded prompts come from: the server, validation, cost
        and preview all take the folder this returns.
        """
        folder = Path(self.prompts_dir).resolve()
        if not (folder / "prompts.yaml").is_file():
            raise ConfigError(f"HOTLINE_PROMPTS_DIR={self.prompts_dir}: no prompts.yaml in {folder} (the folder of"
                              " recorded prompts: prompts.yaml and <language>/<id>.wav, as Asterisk plays them)")
        return folder



def host_port(name: str, value: str) -> tuple[str, int]:
    """`value` ("host:port", "[v6]:port") of the listen setting `name` split; a ConfigError naming
    HOTLINE_<NAME> if it is not an address a server can listen on."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535 or any(c.isspace() for c in host):
        raise ConfigError(f"HOTLINE_{name.upper()}={value!r} is not host:port (e.g. 127.0.0.1:9464)")
    return host, int(port)


#: The built-in defaults, for parts built without a server's settings (tests, simulated calls).
DEFAULTS = Settings()


def _coerce(name: str, raw: str, kind: type) -> object:
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"HOTLINE_{name.upper()}={raw!r} is not a number") from exc
    return raw


# --- the DSN's password: the one place that finds, removes or adds it -----------------------------
# Forms: a URL (postgresql://user:pw@host/db?password=pw&sslpassword=pw) and libpq key/value
# (host=h password='pw' dbname=d). Parsing errs on the side of hiding: everything before the last
# `@` of a URL is credentials, whatever characters the password holds.
_SECRET_KEYS = frozenset({"password", "sslpassword"})
_KEY_VALUE = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)\s*")


def _split_password(dsn: str) -> tuple[str, bool]:
    """(the DSN without its passwords, whether it had one)."""
    if "://" in dsn:
        scheme, _, rest = dsn.partition("://")
        query_at = rest.find("?") if "?" in rest else len(rest)
        at = rest.rfind("@", 0, query_at)
        if at < 0:
            at = rest.rfind("@")  # an unencoded '?' in the password: hide up to the host all the same
        had = False
        if at >= 0:
            user, _, password = rest[:at].partition(":")
            had = bool(password)
            rest = f"{user}@{rest[at + 1:]}" if user else rest[at + 1:]
        base, question, query = rest.partition("?")
        kept = [p for p in query.split("&") if unquote(p.partition("=")[0]).lower() not in _SECRET_KEYS]
        had = had or len(kept) < len(query.split("&"))
        return f"{scheme}://{base}" + (question + "&".join(kept) if any(kept) else ""), had
    kept, had, end = [], False, 0
    for match in _KEY_VALUE.finditer(dsn):
        if match.start() != end:
            break
        end = match.end()
        if match.group(1).lower() in _SECRET_KEYS:
            had = True
        else:
            kept.append(f"{match.group(1)}={match.group(2)}")
    if end != len(dsn):  # not key/value as libpq writes it: show nothing that could be a secret
        return "(DSN not shown: not a postgresql:// URL or key=value list)", "password" in dsn.lower()
    return " ".join(kept), had


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages, reprs and logs."""
    return _split_password(dsn)[0]


def dsn_has_password(dsn: str) -> bool:
    return _split_password(dsn)[1]


def _with_password_file(dsn: str, path: str) -> str:
    """The DSN with the password read from `path` (one trailing newline ignored)."""
    if dsn_has_password(dsn):
        raise ConfigError("the DSN carries a password and HOTLINE_DB_PASSWORD_FILE is set: give the password"
                          " in one place only")
    try:
        password = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"HOTLINE_DB_PASSWORD_FILE={path}: cannot read it ({type(exc).__name__})") from exc
    if not password:
        raise ConfigError(f"HOTLINE_DB_PASSWORD_FILE={path} is empty")
    if "://" in dsn:
        base, _, fragment = dsn.partition("#")
        joiner = "&" if "?" in base else "?"
        return f"{base}{joiner}password={quote(password, safe='')}" + (f"#{fragment}" if fragment else "")
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    return f"{dsn} password='{escaped}'"
