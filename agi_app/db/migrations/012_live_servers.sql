-- The live view (issue 12 items 1-2): each running `hotline serve` keeps one row here, rewritten
-- every second (agi_app/monitoring/live_store.py), read by `hotline monitor` and the wallboard.
-- A server deletes its row when it stops; the row of a server that died just ages: readers ignore
-- rows older than HOTLINE_LIVE_STALE_MS. updated_at is the database's clock, so one clock decides.
-- The snapshot holds masked callers only (agi_app/secure.py masked_phone), never a full number.
CREATE TABLE live_servers (
    server_id  text PRIMARY KEY,
    updated_at timestamptz NOT NULL DEFAULT now(),
    snapshot   jsonb NOT NULL
);
