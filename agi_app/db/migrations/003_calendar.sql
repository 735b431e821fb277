-- The business calendar: when the agent service is open (self-service is 24x7).
-- Evaluated per call by agi_app/calendar/model.py; administered by `hotline calendar`.
--
-- Scope: '*' is the calendar of every line; a line number (e.g. '95001') holds that line's
-- overrides, which win over '*' for the same date or weekday (see the model for the rules).
-- Times are local wall-clock times in the scope's time zone. Closing times are exclusive;
-- '23:59:59.999999' stands for "until midnight" (the CLI's 24:00). Intervals never cross
-- midnight: an overnight shift is two intervals on two weekdays.

CREATE TABLE calendar_settings (
    scope      text PRIMARY KEY CHECK (scope = '*' OR scope ~ '^[0-9A-Za-z_+-]{1,32}$'),
    -- An IANA zone name, validated by the CLI with zoneinfo (PostgreSQL cannot check it in a CHECK).
    timezone   text NOT NULL CHECK (timezone <> ''),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Weekly opening hours. Several rows per scope and weekday = several intervals that day.
-- A row with opens and closes both NULL marks the weekday explicitly closed in that scope
-- (so a line can be closed on a day that '*' opens); the repository keeps such a marker the
-- only row of its scope and weekday.
CREATE TABLE calendar_weekly_hours (
    id         bigserial PRIMARY KEY,
    scope      text NOT NULL DEFAULT '*' CHECK (scope = '*' OR scope ~ '^[0-9A-Za-z_+-]{1,32}$'),
    weekday    smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),  -- 0 = Monday .. 6 = Sunday
    opens      time,
    closes     time,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT calendar_weekly_hours_both_or_neither CHECK ((opens IS NULL) = (closes IS NULL)),
    CONSTRAINT calendar_weekly_hours_order CHECK (closes > opens)
);
CREATE UNIQUE INDEX calendar_weekly_hours_interval ON calendar_weekly_hours (scope, weekday, opens)
    WHERE opens IS NOT NULL;
CREATE UNIQUE INDEX calendar_weekly_hours_closed ON calendar_weekly_hours (scope, weekday)
    WHERE opens IS NULL;

-- Dated rules: a holiday, a closed day, or special opening hours; at most one per scope and date.
CREATE TABLE calendar_days (
    scope      text NOT NULL DEFAULT '*' CHECK (scope = '*' OR scope ~ '^[0-9A-Za-z_+-]{1,32}$'),
    day        date NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('holiday', 'closed', 'open')),
    opens      time,
    closes     time,
    name       text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, day),
    CONSTRAINT calendar_days_hours_only_when_open
        CHECK ((kind = 'open') = (opens IS NOT NULL AND closes IS NOT NULL)
               AND (kind = 'open' OR (opens IS NULL AND closes IS NULL))),
    CONSTRAINT calendar_days_order CHECK (closes > opens)
);
CREATE INDEX calendar_days_day ON calendar_days (day);
