-- Which Asterisk each call is on ("systemname@entity_id"), so that a server starting after a crash
-- can close the journeys its killed predecessor left open on that Asterisk — and only those: in a
-- cluster each node's server closes its own node's.
ALTER TABLE calls ADD COLUMN asterisk text;
CREATE INDEX calls_open_by_asterisk ON calls (asterisk, started_at) WHERE ended_at IS NULL;
