-- Satisfaction survey (issue 11 item 2): one row per survey offered, answered or not.
-- kind: after_self_service (a `survey` node in the caller's flow) or after_agent (the caller came
-- back from the queue when the agent hung up: the dialplan re-enters the app, `engine/survey.py`).
-- call_id is the original call's (the `calls` row, when the app served its start); no foreign key:
-- a call the dialplan fallback queued has no `calls` row, and its survey still counts.
-- result no_answer has no score and says why: the caller hung up, pressed nothing in time, or a
-- key outside 1–5 (never its value).
ALTER TABLE survey_answers
    ALTER COLUMN score DROP NOT NULL,
    ADD COLUMN kind      text NOT NULL DEFAULT 'after_self_service'
                         CHECK (kind IN ('after_self_service', 'after_agent')),
    ADD COLUMN result    text NOT NULL DEFAULT 'ok' CHECK (result IN ('ok', 'no_answer')),
    ADD COLUMN no_answer text CHECK (no_answer IN ('hangup', 'timeout', 'invalid_key')),
    ADD COLUMN queue     text,
    ADD COLUMN agent     text,
    ADD CONSTRAINT survey_answers_result_matches
        CHECK ((result = 'ok') = (score IS NOT NULL) AND (result = 'ok') = (no_answer IS NULL)),
    ADD CONSTRAINT survey_answers_agent_only_after_agent
        CHECK (kind = 'after_agent' OR (queue IS NULL AND agent IS NULL));

-- A call may be surveyed after self-service and again after its agent.
ALTER TABLE survey_answers DROP CONSTRAINT survey_answers_pkey,
    ADD PRIMARY KEY (call_id, kind, node_id);

-- Per-agent satisfaction over a period.
CREATE INDEX survey_answers_agent ON survey_answers (agent, at) WHERE agent IS NOT NULL;
