-- Alerts (issue 12 item 4): every change of an alert a `hotline serve` evaluates — raised,
-- escalated, eased, cleared — one row each (agi_app/analytics/alerts.py has the rules). An alert is
-- active while its server's latest row for its key is not `cleared`; a server clears its own when it
-- stops. `hotline alerts list [--active]` reads them.
CREATE TABLE alert_events (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL,
    server_id  text NOT NULL,
    key        text NOT NULL,
    rule       text NOT NULL,
    subject    text NOT NULL DEFAULT '',
    change     text NOT NULL CHECK (change IN ('raised', 'escalated', 'eased', 'cleared')),
    level      text CHECK (level IN ('warning', 'critical')),
    value      double precision NOT NULL,
    message    text NOT NULL,
    CHECK ((change = 'cleared') = (level IS NULL))
);
CREATE INDEX alert_events_by_key ON alert_events (server_id, key, id DESC);
CREATE INDEX alert_events_at ON alert_events (at DESC);
