-- Outbound campaigns (issue 11 item 4, SPEC "Call handling" 10): created by a department, approved
-- by another actor, dialled within allowed hours on the calendar's open days, at most 3 attempts
-- per customer, results recorded per attempt. The rules are agi_app/centre/campaigns.py.

-- message: a recorded prompt id (message_sound, played in `language`) or a text spoken by the
-- speech synthesiser (message_text); exactly one. hours: the daily window, bank wall-clock time.
CREATE TABLE campaigns (
    campaign_id   bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    department    text NOT NULL,
    message_sound text,
    message_text  text,
    language      text NOT NULL CHECK (language IN ('zh', 'en')),
    hours_start   time NOT NULL,
    hours_end     time NOT NULL,
    concurrency   integer NOT NULL CHECK (concurrency BETWEEN 1 AND 50),
    state         text NOT NULL DEFAULT 'draft'
                  CHECK (state IN ('draft', 'approved', 'running', 'paused', 'finished')),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    approved_by   text,
    approved_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((message_sound IS NULL) <> (message_text IS NULL)),
    CHECK (hours_end > hours_start),
    CHECK (approved_by IS NULL OR lower(approved_by) <> lower(created_by)),
    CHECK (state = 'draft' OR approved_by IS NOT NULL)
);

-- One row per customer to call: the number (normalised, digits only), attempts so far, when the
-- next may start, and whether they are done (reached, or attempts used up).
CREATE TABLE campaign_targets (
    target_id   bigserial PRIMARY KEY,
    campaign_id bigint NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
    customer_id text,
    number      text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 3),
    due_at      timestamptz NOT NULL DEFAULT now(),
    done        boolean NOT NULL DEFAULT false,
    UNIQUE (campaign_id, number)
);
CREATE INDEX campaign_targets_due ON campaign_targets (campaign_id, due_at, target_id) WHERE NOT done;

-- One row per attempt: `dialling` until Asterisk says; ended_at NULL while its channel lives
-- (ringing, or hearing the message), which is what the concurrency limit counts.
CREATE TABLE campaign_attempts (
    target_id   bigint NOT NULL REFERENCES campaign_targets (target_id) ON DELETE CASCADE,
    attempt     integer NOT NULL CHECK (attempt BETWEEN 1 AND 3),
    campaign_id bigint NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
    started_at  timestamptz NOT NULL DEFAULT now(),
    answered_at timestamptz,
    ended_at    timestamptz,
    result      text NOT NULL DEFAULT 'dialling'
                CHECK (result IN ('dialling', 'answered', 'busy', 'no_answer', 'failed')),
    detail      text NOT NULL DEFAULT '',
    PRIMARY KEY (target_id, attempt)
);
CREATE INDEX campaign_attempts_live ON campaign_attempts (campaign_id) WHERE ended_at IS NULL;
