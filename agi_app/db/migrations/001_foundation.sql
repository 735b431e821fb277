-- Customers, their phone numbers, calls and journeys, admin audit log.
CREATE TABLE customers (
    customer_id   text PRIMARY KEY,
    name          text NOT NULL,
    salutation    text NOT NULL DEFAULT '',
    segment       text NOT NULL CHECK (segment IN ('standard', 'vip', 'private', 'elderly')),
    language      text NOT NULL CHECK (language IN ('zh', 'en')),
    bill_due_date date,
    flags         jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per normalised number (see agi_app/directory/phone.py); a number has one owner.
CREATE TABLE customer_phones (
    phone       text PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE
);
CREATE INDEX customer_phones_customer ON customer_phones (customer_id);

CREATE TABLE calls (
    call_id         text PRIMARY KEY,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    caller          text NOT NULL DEFAULT '',
    dnis            text NOT NULL DEFAULT '',
    customer_id     text,
    segment         text,
    language        text,
    menu_version    integer,
    outcome         text CHECK (outcome IN ('self_service', 'transferred', 'abandoned', 'hangup', 'error')),
    transfer_target text,
    duration_ms     integer
);
CREATE INDEX calls_started_at ON calls (started_at DESC);

-- The journey: nodes in order, and what the caller entered at each (secure input already masked).
CREATE TABLE call_nodes (
    call_id    text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    seq        integer NOT NULL,
    node_id    text NOT NULL,
    entered_at timestamptz NOT NULL,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE call_inputs (
    call_id  text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    seq      integer NOT NULL,
    node_seq integer NOT NULL,
    input    text NOT NULL,
    result   text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE call_services (
    call_id text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    seq     integer NOT NULL,
    service text NOT NULL,
    result  text NOT NULL CHECK (result IN ('ok', 'refused', 'failed', 'abandoned')),
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE audit_log (
    id     bigserial PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    actor  text NOT NULL,
    action text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);
