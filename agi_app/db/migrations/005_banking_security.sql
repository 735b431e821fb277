-- Phone-banking security: PIN hashes and lockouts, the authentication log, one-time codes (the SMS
-- gateway's outbox), security events the risk rules count. No PIN or code is ever stored in clear,
-- except a one-time code in the outbox until the gateway has sent it (see agi_app/banking/otp.py).

-- One row per customer with a PIN. pin_hash is scrypt$n$r$p$salt$hash (agi_app/banking/pin.py).
-- failures counts wrong PINs in a row; locked_until > now() refuses every PIN (even the right one).
CREATE TABLE customer_pins (
    customer_id  text PRIMARY KEY REFERENCES customers (customer_id) ON DELETE CASCADE,
    pin_hash     text NOT NULL CHECK (pin_hash LIKE 'scrypt$%'),
    failures     integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locked_until timestamptz,
    changed_at   timestamptz NOT NULL DEFAULT now()
);

-- Every authentication attempt: which call, who (NULL: the number typed matched nobody), how the
-- caller named themselves, and the result. Never the PIN.
CREATE TABLE auth_attempts (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    call_id     text NOT NULL DEFAULT '',
    customer_id text,
    method      text NOT NULL CHECK (method IN ('phone', 'customer', 'account', 'card')),
    result      text NOT NULL CHECK (result IN ('ok', 'wrong_pin', 'locked', 'no_pin', 'unknown'))
);
CREATE INDEX auth_attempts_customer ON auth_attempts (customer_id, at);
CREATE INDEX auth_attempts_call ON auth_attempts (call_id);

-- One-time codes. `code` is clear only until the gateway marks the row sent (then NULL);
-- verification compares code_hash. used_at: spent; voided_at: a newer code replaced it.
CREATE TABLE otp_outbox (
    id          bigserial PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    phone       text NOT NULL,
    call_id     text NOT NULL DEFAULT '',
    code        text,
    code_hash   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    sent_at     timestamptz,
    attempts    integer NOT NULL DEFAULT 0,
    used_at     timestamptz,
    voided_at   timestamptz,
    CHECK (sent_at IS NULL OR code IS NULL)
);
CREATE INDEX otp_outbox_customer ON otp_outbox (customer_id, created_at);
CREATE INDEX otp_outbox_unsent ON otp_outbox (id) WHERE sent_at IS NULL;

-- What the risk rules count and what they decided: PIN changes (by phone or CLI) and flags raised.
CREATE TABLE security_events (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    customer_id text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('pin_change', 'risk_flag')),
    call_id     text NOT NULL DEFAULT '',
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX security_events_customer ON security_events (customer_id, kind, at);
