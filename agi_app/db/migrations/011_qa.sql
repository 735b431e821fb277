-- Quality inspection (issue 11 item 3): agent calls recorded at the bridge, reviewers' scores.

-- The recording of the leg's talk with the agent: a name relative to Asterisk's recording spool,
-- without extension (agi_app/centre/qa.py recording_name), stored by the queue tracker when
-- app_queue connects an agent. NULL: no agent answered, or the leg predates recording.
ALTER TABLE queue_legs ADD COLUMN recording text;

-- One score per reviewer per agent leg (a reviewer scoring again replaces their score; the audit
-- log keeps every one). agent is the leg's agent when it was scored: a report per agent needs
-- no join to know whose call it was.
CREATE TABLE qa_scores (
    call_id   text NOT NULL,
    queue     text NOT NULL,
    reviewer  text NOT NULL CHECK (reviewer <> ''),
    agent     text NOT NULL,
    score     integer NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment   text NOT NULL DEFAULT '',
    scored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, queue, reviewer),
    FOREIGN KEY (call_id, queue) REFERENCES queue_legs (call_id, queue)
);
CREATE INDEX qa_scores_agent ON qa_scores (agent);
